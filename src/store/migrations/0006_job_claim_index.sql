-- Up Migration
-- The claim looks for the oldest pending jobs of an agent's name OR its pool. Ordered by created_at over two
-- targets it cannot use jobs_pending (target, created_at, id), and after an autoanalyze taken during a burst the
-- planner was seen walking the whole job history backwards (bench/results/e2e-*.txt). This index serves it directly.
CREATE INDEX jobs_pending_created ON jobs (created_at, id) WHERE state = 'pending';
