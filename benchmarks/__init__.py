"""Speed and memory targets live here, never as timing asserts in tests. ``make bench`` runs them all."""
