-- Retention deletes scan results by the server's receive time, oldest
-- first, in small batches; the metrics endpoint counts open scan tasks.
CREATE INDEX scan_results_received ON scan_results (received_at);
CREATE INDEX scan_tasks_open ON scan_tasks (expires_at) WHERE completed_at IS NULL;
