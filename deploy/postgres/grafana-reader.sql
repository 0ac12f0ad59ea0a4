-- Grafana's read-only role (docker-compose.yml, service grafana-db-role), run with
-- `psql -v role=grafana_reader -v pw=PASSWORD -f grafana-reader.sql` against the registry database.
-- After `smartwater init`, so the tables exist; idempotent, so it runs on every `docker compose up`.
-- Only what the dashboard shows: never users (password hashes) or the river-chief tables (personal data).
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'role', :'pw')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'role', :'pw') \gexec
GRANT CONNECT ON DATABASE :"DBNAME" TO :"role";
GRANT USAGE ON SCHEMA public TO :"role";
GRANT SELECT ON stations, alerts, dead_letters TO :"role";
