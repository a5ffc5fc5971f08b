DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
DROP TRIGGER jobs_event_on_update;
DROP TRIGGER jobs_event_on_insert;
DROP TABLE job_events;
