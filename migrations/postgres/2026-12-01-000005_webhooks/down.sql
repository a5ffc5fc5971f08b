DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
DROP TRIGGER jobs_event_on_update ON jobs;
DROP TRIGGER jobs_event_on_insert ON jobs;
DROP FUNCTION clawrk_record_job_event();
DROP TABLE job_events;
