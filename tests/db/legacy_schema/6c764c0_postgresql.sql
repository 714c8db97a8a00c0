-- The schema SQLModel.metadata.create_all made at commit 6c764c0 (postgresql), the last
-- release without migrations. Generated once from that commit's table modules; never edit.
CREATE TABLE spark_traces (
	trace_id VARCHAR NOT NULL, 
	graph_id VARCHAR NOT NULL, 
	version_id VARCHAR NOT NULL, 
	started_at FLOAT NOT NULL, 
	duration_ms FLOAT NOT NULL, 
	status VARCHAR NOT NULL, 
	routing_arm VARCHAR NOT NULL, 
	routing_key VARCHAR, 
	input_fingerprint VARCHAR, 
	inputs_json TEXT, 
	error_type VARCHAR, 
	cost FLOAT NOT NULL, 
	quality FLOAT, 
	PRIMARY KEY (trace_id)
);

CREATE INDEX ix_spark_traces_graph_version_started ON spark_traces (graph_id, version_id, started_at);

CREATE TABLE spark_spans (
	span_id VARCHAR NOT NULL, 
	trace_id VARCHAR NOT NULL, 
	graph_id VARCHAR NOT NULL, 
	version_id VARCHAR NOT NULL, 
	node_id VARCHAR NOT NULL, 
	node_type VARCHAR NOT NULL, 
	started_at FLOAT NOT NULL, 
	duration_ms FLOAT NOT NULL, 
	status VARCHAR NOT NULL, 
	error_type VARCHAR, 
	attempts INTEGER NOT NULL, 
	cache_hit BOOLEAN NOT NULL, 
	tokens INTEGER NOT NULL, 
	cost FLOAT NOT NULL, 
	input_fingerprint VARCHAR, 
	output_json TEXT, 
	PRIMARY KEY (span_id)
);

CREATE INDEX ix_spark_spans_graph_version_node_started ON spark_spans (graph_id, version_id, node_id, started_at);

CREATE INDEX ix_spark_spans_trace_with_output ON spark_spans (trace_id) WHERE output_json IS NOT NULL;

CREATE INDEX ix_spark_spans_failed ON spark_spans (graph_id, version_id, node_id, started_at) WHERE status = 'error';

CREATE TABLE spark_feedback (
	id SERIAL NOT NULL, 
	trace_id VARCHAR NOT NULL, 
	score FLOAT NOT NULL, 
	created_at FLOAT NOT NULL, 
	label VARCHAR, 
	source VARCHAR NOT NULL, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_spark_feedback_trace_id ON spark_feedback (trace_id);

CREATE TABLE spark_graphs (
	graph_id VARCHAR NOT NULL, 
	node_modules JSON NOT NULL, 
	owner VARCHAR NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (graph_id)
);

CREATE TABLE spark_versions (
	version_id VARCHAR NOT NULL, 
	graph_id VARCHAR NOT NULL, 
	parent_id VARCHAR, 
	spec_json TEXT NOT NULL, 
	hypothesis_id VARCHAR, 
	author VARCHAR NOT NULL, 
	note VARCHAR NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (version_id)
);

CREATE INDEX ix_spark_versions_graph_id ON spark_versions (graph_id);

CREATE TABLE spark_routing (
	graph_id VARCHAR NOT NULL, 
	active_version_id VARCHAR NOT NULL, 
	candidate_version_id VARCHAR, 
	candidate_share FLOAT NOT NULL, 
	revision INTEGER NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (graph_id)
);

CREATE TABLE spark_routing_events (
	id SERIAL NOT NULL, 
	graph_id VARCHAR NOT NULL, 
	idempotency_key VARCHAR NOT NULL, 
	action VARCHAR NOT NULL, 
	active_version_id VARCHAR NOT NULL, 
	candidate_version_id VARCHAR, 
	candidate_share FLOAT NOT NULL, 
	revision INTEGER NOT NULL, 
	actor VARCHAR NOT NULL, 
	reason VARCHAR NOT NULL, 
	at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (idempotency_key)
);

CREATE INDEX ix_spark_routing_events_graph_id ON spark_routing_events (graph_id);

CREATE TABLE spark_deployments (
	deployment_id VARCHAR NOT NULL, 
	graph_id VARCHAR NOT NULL, 
	cycle INTEGER NOT NULL, 
	from_version_id VARCHAR NOT NULL, 
	to_version_id VARCHAR NOT NULL, 
	strategy VARCHAR NOT NULL, 
	status VARCHAR NOT NULL, 
	reason VARCHAR NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (deployment_id)
);

CREATE INDEX ix_spark_deployments_graph_id ON spark_deployments (graph_id);

CREATE TABLE spark_reviews (
	review_id VARCHAR NOT NULL, 
	graph_id VARCHAR NOT NULL, 
	cycle INTEGER NOT NULL, 
	hypothesis_id VARCHAR NOT NULL, 
	risk VARCHAR NOT NULL, 
	status VARCHAR NOT NULL, 
	reviewer VARCHAR, 
	comment VARCHAR NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	decided_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (review_id)
);

CREATE INDEX ix_spark_reviews_status ON spark_reviews (status);

CREATE INDEX ix_spark_reviews_graph_id ON spark_reviews (graph_id);

CREATE TABLE spark_loop_leases (
	graph_id VARCHAR NOT NULL, 
	workflow_id VARCHAR NOT NULL, 
	acquired_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	renewed_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (graph_id)
);

CREATE TABLE spark_attempts (
	attempt_id VARCHAR NOT NULL, 
	graph_id VARCHAR NOT NULL, 
	cycle INTEGER NOT NULL, 
	base_version_id VARCHAR NOT NULL, 
	candidate_version_id VARCHAR, 
	hypothesis_id VARCHAR NOT NULL, 
	title VARCHAR NOT NULL, 
	diagnosis_kind VARCHAR NOT NULL, 
	change_kinds JSON NOT NULL, 
	target_nodes JSON NOT NULL, 
	primary_metric VARCHAR NOT NULL, 
	risk VARCHAR NOT NULL, 
	outcome VARCHAR NOT NULL, 
	effect FLOAT, 
	details JSON NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (attempt_id)
);

CREATE INDEX ix_spark_attempts_graph_id ON spark_attempts (graph_id);

CREATE INDEX ix_spark_attempts_hypothesis_id ON spark_attempts (hypothesis_id);

CREATE TABLE spark_patterns (
	pattern_id VARCHAR NOT NULL, 
	diagnosis_kind VARCHAR NOT NULL, 
	change_kind VARCHAR NOT NULL, 
	attempts INTEGER NOT NULL, 
	successes INTEGER NOT NULL, 
	success_rate FLOAT NOT NULL, 
	mean_effect FLOAT, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (pattern_id)
);

CREATE TABLE spark_proposals (
	proposal_id VARCHAR NOT NULL, 
	graph_id VARCHAR NOT NULL, 
	base_version_id VARCHAR NOT NULL, 
	hypothesis_id VARCHAR NOT NULL, 
	title VARCHAR NOT NULL, 
	change_signature VARCHAR NOT NULL, 
	diagnosis_fingerprint VARCHAR NOT NULL, 
	decision VARCHAR NOT NULL, 
	reason VARCHAR NOT NULL, 
	prior_attempts INTEGER NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (proposal_id)
);

CREATE INDEX ix_spark_proposals_hypothesis_id ON spark_proposals (hypothesis_id);

CREATE INDEX ix_spark_proposals_graph_id ON spark_proposals (graph_id);

CREATE INDEX ix_spark_proposals_change_signature ON spark_proposals (change_signature);

