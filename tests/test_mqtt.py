"""Publisher flow control against a real Mosquitto that goes away and comes back."""

import threading

from core.mqtt import Publisher, wait_for


def test_outstanding_messages_are_capped_and_survive_a_broker_restart(own_broker, own_settings):
    settings = own_settings
    pub = Publisher(settings, "flow-test").start()
    try:
        own_broker.stop()
        assert wait_for(lambda: not pub.connected.is_set(), 10)
        infos = [pub.publish("water/rain/RG9001", b"{}") for _ in range(30)]
        assert pub.outstanding == 30  # queued by paho while disconnected, not lost
        stop = threading.Event()
        stop.set()
        assert pub.wait_for_room(25, stop) is False  # full, and told to give up
        assert pub.flush(timeout=0.2) is False
        own_broker.start()
        assert pub.flush(timeout=20) is True
        assert pub.outstanding == 0 and pub.wait_all_published(infos, 1)
        assert pub.wait_for_room(25) is True
    finally:
        pub.stop()
