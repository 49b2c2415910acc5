-- placeholder: replaced by the schema
CREATE SCHEMA IF NOT EXISTS workq;
