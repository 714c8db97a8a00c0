-- The Spark database (telemetry, registry, experience), beside Temporal's own.
CREATE ROLE spark LOGIN PASSWORD 'spark';
CREATE DATABASE spark OWNER spark;
