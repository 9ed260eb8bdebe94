CREATE TABLE access_epoch (
	id INTEGER NOT NULL,
	epoch BIGINT NOT NULL,
	PRIMARY KEY (id)
);
INSERT INTO "access_epoch" VALUES(1,0);
CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL,
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
INSERT INTO "alembic_version" VALUES('0013');
CREATE TABLE audit_checkpoints (
	chain VARCHAR(32) NOT NULL,
	tree_size BIGINT NOT NULL,
	root_hash BLOB NOT NULL,
	time_ms BIGINT NOT NULL,
	key_id VARCHAR(32) NOT NULL,
	signature BLOB NOT NULL,
	PRIMARY KEY (chain, tree_size)
);
CREATE TABLE audit_deliveries (
	id INTEGER NOT NULL,
	sink_id VARCHAR(32) NOT NULL,
	time_ms BIGINT NOT NULL,
	chain VARCHAR(32) NOT NULL,
	first_seq BIGINT NOT NULL,
	last_seq BIGINT NOT NULL,
	count INTEGER NOT NULL,
	result VARCHAR(16) NOT NULL,
	error VARCHAR(500),
	PRIMARY KEY (id),
	FOREIGN KEY(sink_id) REFERENCES audit_sinks (id) ON DELETE CASCADE
);
CREATE TABLE audit_frontiers (
	chain VARCHAR(32) NOT NULL,
	size BIGINT NOT NULL,
	nodes BLOB NOT NULL,
	PRIMARY KEY (chain)
);
CREATE TABLE audit_heads (
	chain VARCHAR(32) NOT NULL,
	seq BIGINT NOT NULL,
	hash BLOB NOT NULL,
	PRIMARY KEY (chain)
);
CREATE TABLE audit_keys (
	id VARCHAR(32) NOT NULL,
	public_key BLOB NOT NULL,
	wrapped_private_key BLOB NOT NULL,
	created_ms BIGINT NOT NULL,
	PRIMARY KEY (id)
);
CREATE TABLE audit_log (
	id INTEGER NOT NULL,
	chain VARCHAR(32) NOT NULL,
	seq BIGINT NOT NULL,
	time_ms BIGINT NOT NULL,
	actor_kind VARCHAR(16) NOT NULL,
	actor_id VARCHAR(64) NOT NULL,
	source_ip VARCHAR(64) NOT NULL,
	user_agent VARCHAR(256) NOT NULL,
	action VARCHAR(64) NOT NULL,
	target TEXT NOT NULL,
	result VARCHAR(16) NOT NULL,
	reason VARCHAR(500) NOT NULL,
	severity VARCHAR(16) NOT NULL,
	prev_hash BLOB NOT NULL,
	hash BLOB NOT NULL, secret_id VARCHAR(32), leaf_hash BLOB,
	PRIMARY KEY (id),
	CONSTRAINT uq_audit_chain_seq UNIQUE (chain, seq)
);
CREATE TABLE audit_sinks (
	id VARCHAR(32) NOT NULL,
	vault_id VARCHAR(32),
	kind VARCHAR(16) NOT NULL,
	config TEXT NOT NULL,
	wrapped_secret BLOB,
	actions TEXT,
	min_severity VARCHAR(16) NOT NULL,
	cursors TEXT NOT NULL,
	attempts INTEGER NOT NULL,
	next_attempt_ms BIGINT NOT NULL,
	last_error VARCHAR(500),
	created_ms BIGINT NOT NULL,
	PRIMARY KEY (id)
);
CREATE TABLE canaries (
	secret_id VARCHAR(32) NOT NULL,
	looks_like VARCHAR(32) NOT NULL,
	enabled BOOLEAN NOT NULL,
	freeze_related BOOLEAN NOT NULL,
	related_project_ids TEXT NOT NULL,
	created_ms BIGINT NOT NULL,
	PRIMARY KEY (secret_id),
	FOREIGN KEY(secret_id) REFERENCES secrets (id) ON DELETE CASCADE
);
CREATE TABLE canary_trips (
	id INTEGER NOT NULL,
	secret_id VARCHAR(32) NOT NULL,
	project_id VARCHAR(32) NOT NULL,
	actor_kind VARCHAR(16) NOT NULL,
	actor_id VARCHAR(64) NOT NULL,
	source_ip VARCHAR(64) NOT NULL,
	time_ms BIGINT NOT NULL,
	frozen_projects TEXT NOT NULL,
	PRIMARY KEY (id),
	FOREIGN KEY(secret_id) REFERENCES secrets (id) ON DELETE CASCADE
);
CREATE TABLE deliveries (
	machine_id VARCHAR(36) NOT NULL,
	secret_id VARCHAR(32) NOT NULL,
	version INTEGER NOT NULL,
	PRIMARY KEY (machine_id, secret_id),
	FOREIGN KEY(machine_id) REFERENCES machines (id) ON DELETE CASCADE
);
CREATE TABLE dynamic_secrets (
	secret_id VARCHAR(32) NOT NULL,
	engine VARCHAR(16) NOT NULL,
	host VARCHAR(255) NOT NULL,
	port INTEGER NOT NULL,
	"database" VARCHAR(255) NOT NULL,
	admin_secret_id VARCHAR(32) NOT NULL,
	grant_role VARCHAR(1000) NOT NULL,
	default_ttl_s BIGINT NOT NULL,
	max_ttl_s BIGINT NOT NULL,
	username_template VARCHAR(64) NOT NULL,
	creation_statements TEXT NOT NULL,
	revocation_statements TEXT NOT NULL,
	max_leases_per_machine INTEGER,
	created_ms BIGINT NOT NULL,
	updated_ms BIGINT NOT NULL,
	PRIMARY KEY (secret_id),
	FOREIGN KEY(secret_id) REFERENCES secrets (id) ON DELETE CASCADE
);
CREATE TABLE enrollment_tokens (
	id VARCHAR(32) NOT NULL,
	vault_id VARCHAR(32) NOT NULL,
	name VARCHAR(255) NOT NULL,
	token_hash BLOB NOT NULL,
	project_ids TEXT NOT NULL,
	secret_ids TEXT NOT NULL,
	max_uses INTEGER NOT NULL,
	uses INTEGER NOT NULL,
	approval VARCHAR(16) NOT NULL,
	machine_ttl_s BIGINT,
	hostname_pattern VARCHAR(255),
	name_pattern VARCHAR(255),
	source_cidr VARCHAR(64),
	created_ms BIGINT NOT NULL,
	expires_ms BIGINT NOT NULL,
	revoked_ms BIGINT,
	PRIMARY KEY (id),
	FOREIGN KEY(vault_id) REFERENCES vaults (id),
	UNIQUE (token_hash)
);
CREATE TABLE grants (
	machine_id VARCHAR(36) NOT NULL,
	secret_id VARCHAR(32) NOT NULL,
	created_ms BIGINT NOT NULL,
	PRIMARY KEY (machine_id, secret_id),
	FOREIGN KEY(machine_id) REFERENCES machines (id) ON DELETE CASCADE,
	FOREIGN KEY(secret_id) REFERENCES secrets (id) ON DELETE CASCADE
);
CREATE TABLE jwt_roles (
	id VARCHAR(32) NOT NULL,
	vault_id VARCHAR(32) NOT NULL,
	name VARCHAR(64) NOT NULL,
	issuer VARCHAR(512) NOT NULL,
	discovery_url VARCHAR(2048),
	jwks_url VARCHAR(2048),
	public_keys TEXT,
	bound_audiences TEXT NOT NULL,
	bound_subject VARCHAR(256),
	bound_claims TEXT,
	name_claim VARCHAR(128),
	project_ids TEXT NOT NULL,
	secret_ids TEXT NOT NULL,
	machine_ttl_s BIGINT NOT NULL,
	source_cidrs TEXT,
	kubernetes_mode VARCHAR(16),
	kubernetes_cluster VARCHAR(64),
	enabled BOOLEAN NOT NULL,
	created_ms BIGINT NOT NULL,
	updated_ms BIGINT NOT NULL,
	PRIMARY KEY (id),
	FOREIGN KEY(vault_id) REFERENCES vaults (id) ON DELETE CASCADE,
	CONSTRAINT uq_jwt_roles_vault_name UNIQUE (vault_id, name)
);
CREATE TABLE jwt_uses (
	vault_id VARCHAR(32) NOT NULL,
	digest BLOB NOT NULL,
	expires_ms BIGINT NOT NULL,
	PRIMARY KEY (vault_id, digest)
);
CREATE TABLE leases (
	id VARCHAR(32) NOT NULL,
	vault_id VARCHAR(32) NOT NULL,
	project_id VARCHAR(32) NOT NULL,
	dynamic_secret_id VARCHAR(32) NOT NULL,
	machine_id VARCHAR(36),
	username VARCHAR(128) NOT NULL,
	password_ct BLOB,
	password_dek BLOB,
	password_key_version INTEGER,
	snapshot_ct BLOB NOT NULL,
	snapshot_dek BLOB NOT NULL,
	snapshot_key_version INTEGER NOT NULL,
	state VARCHAR(16) NOT NULL,
	created_ms BIGINT NOT NULL,
	expires_ms BIGINT NOT NULL,
	max_expires_ms BIGINT NOT NULL,
	revoke_requested_ms BIGINT,
	revoked_ms BIGINT,
	revoke_reason VARCHAR(500),
	revoked_by VARCHAR(100),
	attempts INTEGER NOT NULL,
	next_attempt_ms BIGINT,
	last_error VARCHAR(500),
	claimed_by VARCHAR(64),
	claim_until_ms BIGINT,
	alerted_ms BIGINT,
	PRIMARY KEY (id)
);
CREATE TABLE login_failures (
	canonical VARCHAR(255) NOT NULL,
	window_start_ms BIGINT NOT NULL,
	failures INTEGER NOT NULL,
	locked_until_ms BIGINT NOT NULL,
	PRIMARY KEY (canonical)
);
CREATE TABLE machine_projects (
	machine_id VARCHAR(36) NOT NULL,
	project_id VARCHAR(32) NOT NULL,
	created_ms BIGINT NOT NULL,
	PRIMARY KEY (machine_id, project_id),
	FOREIGN KEY(machine_id) REFERENCES machines (id) ON DELETE CASCADE,
	FOREIGN KEY(project_id) REFERENCES projects (id) ON DELETE CASCADE
);
CREATE TABLE machines (
	id VARCHAR(36) NOT NULL,
	vault_id VARCHAR(32) NOT NULL,
	name VARCHAR(255) NOT NULL,
	public_key BLOB NOT NULL,
	kind VARCHAR(16) NOT NULL,
	approved BOOLEAN NOT NULL,
	enabled BOOLEAN NOT NULL,
	hostname VARCHAR(255) NOT NULL,
	allowed_cidr VARCHAR(64),
	enrollment_token_id VARCHAR(32),
	created_ms BIGINT NOT NULL,
	expires_ms BIGINT,
	revoked_ms BIGINT,
	last_poll_ms BIGINT, jwt_role_id VARCHAR(32),
	PRIMARY KEY (id),
	FOREIGN KEY(vault_id) REFERENCES vaults (id)
);
CREATE TABLE managed_secrets (
	secret_id VARCHAR(32) NOT NULL,
	provider VARCHAR(16) NOT NULL,
	host VARCHAR(255) NOT NULL,
	port INTEGER NOT NULL,
	"database" VARCHAR(255) NOT NULL,
	admin_secret_id VARCHAR(32) NOT NULL,
	strategy VARCHAR(16) NOT NULL,
	base_username VARCHAR(255) NOT NULL,
	alt_username VARCHAR(255),
	grace_s BIGINT NOT NULL,
	previous_username VARCHAR(255),
	disable_previous_at_ms BIGINT,
	agent_status VARCHAR(16),
	agent_error VARCHAR(500),
	agent_seen_ms BIGINT,
	PRIMARY KEY (secret_id),
	FOREIGN KEY(admin_secret_id) REFERENCES secrets (id),
	FOREIGN KEY(secret_id) REFERENCES secrets (id) ON DELETE CASCADE
);
CREATE TABLE nonces (
	machine_id VARCHAR(36) NOT NULL,
	nonce VARCHAR(128) NOT NULL,
	expires_ms BIGINT NOT NULL,
	PRIMARY KEY (machine_id, nonce)
);
CREATE TABLE project_keys (
	project_id VARCHAR(32) NOT NULL,
	version INTEGER NOT NULL,
	wrapped_key BLOB NOT NULL,
	created_ms BIGINT NOT NULL,
	PRIMARY KEY (project_id, version),
	FOREIGN KEY(project_id) REFERENCES projects (id) ON DELETE CASCADE
);
CREATE TABLE projects (
	id VARCHAR(32) NOT NULL,
	vault_id VARCHAR(32) NOT NULL,
	name VARCHAR(255) NOT NULL,
	key_version INTEGER NOT NULL,
	created_ms BIGINT NOT NULL, frozen_ms BIGINT, frozen_by VARCHAR(32),
	PRIMARY KEY (id),
	FOREIGN KEY(vault_id) REFERENCES vaults (id),
	CONSTRAINT uq_projects_vault_name UNIQUE (vault_id, name)
);
CREATE TABLE recovery_codes (
	user_id VARCHAR(32) NOT NULL,
	code_hash BLOB NOT NULL,
	used_ms BIGINT,
	PRIMARY KEY (user_id, code_hash),
	FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE TABLE role_bindings (
	id VARCHAR(32) NOT NULL,
	role VARCHAR(16) NOT NULL,
	vault_id VARCHAR(32) NOT NULL,
	project_id VARCHAR(32),
	user_id VARCHAR(32),
	group_name VARCHAR(255),
	created_ms BIGINT NOT NULL,
	PRIMARY KEY (id),
	FOREIGN KEY(vault_id) REFERENCES vaults (id) ON DELETE CASCADE,
	FOREIGN KEY(project_id) REFERENCES projects (id) ON DELETE CASCADE,
	FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE TABLE rotation_policies (
	secret_id VARCHAR(32) NOT NULL,
	interval_s BIGINT,
	cron VARCHAR(120),
	length INTEGER NOT NULL,
	charset VARCHAR(16) NOT NULL,
	fields TEXT,
	enabled BOOLEAN NOT NULL,
	next_due_ms BIGINT NOT NULL,
	last_rotated_ms BIGINT,
	last_error VARCHAR(500),
	PRIMARY KEY (secret_id),
	FOREIGN KEY(secret_id) REFERENCES secrets (id) ON DELETE CASCADE
);
CREATE TABLE rotations (
	id VARCHAR(32) NOT NULL,
	secret_id VARCHAR(32) NOT NULL,
	status VARCHAR(16) NOT NULL,
	"trigger" VARCHAR(16) NOT NULL,
	ciphertext BLOB,
	wrapped_dek BLOB,
	key_version INTEGER,
	version INTEGER,
	error VARCHAR(500),
	created_ms BIGINT NOT NULL,
	updated_ms BIGINT NOT NULL,
	PRIMARY KEY (id),
	FOREIGN KEY(secret_id) REFERENCES secrets (id) ON DELETE CASCADE
);
CREATE TABLE "seal_config" (
	id INTEGER NOT NULL,
	kind VARCHAR(32) NOT NULL,
	shares INTEGER NOT NULL,
	threshold INTEGER NOT NULL,
	wrapped_root_key BLOB NOT NULL,
	created_ms BIGINT NOT NULL,
	seal_epoch BIGINT DEFAULT 0 NOT NULL,
	PRIMARY KEY (id)
);
CREATE TABLE secret_versions (
	secret_id VARCHAR(32) NOT NULL,
	version INTEGER NOT NULL,
	ciphertext BLOB NOT NULL,
	wrapped_dek BLOB NOT NULL,
	key_version INTEGER NOT NULL,
	field_names TEXT,
	created_ms BIGINT NOT NULL,
	created_by VARCHAR(64) NOT NULL,
	PRIMARY KEY (secret_id, version),
	FOREIGN KEY(secret_id) REFERENCES secrets (id) ON DELETE CASCADE
);
CREATE TABLE secrets (
	id VARCHAR(32) NOT NULL,
	vault_id VARCHAR(32) NOT NULL,
	project_id VARCHAR(32) NOT NULL,
	name VARCHAR(255) NOT NULL,
	kind VARCHAR(16) NOT NULL,
	current_version INTEGER NOT NULL,
	created_ms BIGINT NOT NULL,
	updated_ms BIGINT NOT NULL,
	deleted_ms BIGINT,
	PRIMARY KEY (id),
	FOREIGN KEY(project_id) REFERENCES projects (id) ON DELETE CASCADE,
	FOREIGN KEY(vault_id) REFERENCES vaults (id)
);
CREATE TABLE "tokens" (
	id VARCHAR(32) NOT NULL,
	kind VARCHAR(16) NOT NULL,
	vault_id VARCHAR(32),
	name VARCHAR(255) NOT NULL,
	token_hash BLOB NOT NULL,
	created_ms BIGINT NOT NULL,
	expires_ms BIGINT,
	revoked_ms BIGINT,
	role VARCHAR(16) DEFAULT 'admin' NOT NULL,
	project_id VARCHAR(32),
	PRIMARY KEY (id),
	CONSTRAINT fk_tokens_project_id_projects FOREIGN KEY(project_id) REFERENCES projects (id) ON DELETE CASCADE,
	UNIQUE (token_hash),
	FOREIGN KEY(vault_id) REFERENCES vaults (id)
);
CREATE TABLE user_sessions (
	id VARCHAR(32) NOT NULL,
	user_id VARCHAR(32) NOT NULL,
	token_hash BLOB NOT NULL,
	kind VARCHAR(16) NOT NULL,
	name VARCHAR(255) NOT NULL,
	mfa BOOLEAN NOT NULL,
	created_ms BIGINT NOT NULL,
	last_seen_ms BIGINT NOT NULL,
	expires_ms BIGINT NOT NULL,
	revoked_ms BIGINT,
	scope_role VARCHAR(16),
	scope_vault VARCHAR(32),
	scope_project VARCHAR(32),
	PRIMARY KEY (id),
	FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE,
	UNIQUE (token_hash)
);
CREATE TABLE users (
	id VARCHAR(32) NOT NULL,
	name VARCHAR(255) NOT NULL,
	canonical VARCHAR(255) NOT NULL,
	email VARCHAR(320) NOT NULL,
	password_hash TEXT,
	disabled_ms BIGINT,
	created_ms BIGINT NOT NULL,
	totp_wrapped BLOB,
	totp_confirmed BOOLEAN DEFAULT false NOT NULL,
	totp_last_step BIGINT,
	oidc_issuer VARCHAR(255),
	oidc_subject VARCHAR(255),
	groups TEXT DEFAULT '[]' NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (canonical),
	CONSTRAINT uq_users_oidc UNIQUE (oidc_issuer, oidc_subject)
);
CREATE TABLE "vaults" (
	id VARCHAR(32) NOT NULL,
	name VARCHAR(255) NOT NULL,
	created_ms BIGINT NOT NULL,
	require_mfa BOOLEAN DEFAULT false NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (name)
);
CREATE INDEX ix_audit_time ON audit_log (chain, time_ms);
CREATE INDEX ix_secrets_deleted_ms ON secrets (deleted_ms);
CREATE UNIQUE INDEX uq_secrets_live_name ON secrets (project_id, name) WHERE deleted_ms IS NULL;
CREATE INDEX ix_nonces_expires ON nonces (expires_ms);
CREATE INDEX ix_machines_vault ON machines (vault_id);
CREATE INDEX ix_grants_secret ON grants (secret_id);
CREATE INDEX ix_audit_deliveries_sink ON audit_deliveries (sink_id, id);
CREATE INDEX ix_audit_actor ON audit_log (chain, actor_id, seq);
CREATE INDEX ix_audit_secret ON audit_log (chain, secret_id, seq);
CREATE INDEX ix_audit_severity ON audit_log (chain, severity, seq);
CREATE INDEX ix_rotation_due ON rotation_policies (enabled, next_due_ms);
CREATE INDEX ix_rotations_secret ON rotations (secret_id, status);
CREATE INDEX ix_canary_trips_secret ON canary_trips (secret_id, time_ms);
CREATE INDEX ix_audit_action_seq ON audit_log (chain, action, seq);
CREATE TRIGGER projects_access_epoch_update AFTER UPDATE ON projects BEGIN UPDATE access_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER projects_access_epoch_delete AFTER DELETE ON projects BEGIN UPDATE access_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER secrets_access_epoch_update AFTER UPDATE ON secrets BEGIN UPDATE access_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER secrets_access_epoch_delete AFTER DELETE ON secrets BEGIN UPDATE access_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER secret_versions_access_epoch_update AFTER UPDATE ON secret_versions BEGIN UPDATE access_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER secret_versions_access_epoch_delete AFTER DELETE ON secret_versions BEGIN UPDATE access_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER machines_access_epoch_update AFTER UPDATE OF vault_id, public_key, approved, enabled, allowed_cidr, expires_ms, revoked_ms ON machines BEGIN UPDATE access_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER machines_access_epoch_delete AFTER DELETE ON machines BEGIN UPDATE access_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER machine_projects_access_epoch_insert AFTER INSERT ON machine_projects BEGIN UPDATE access_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER machine_projects_access_epoch_update AFTER UPDATE ON machine_projects BEGIN UPDATE access_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER machine_projects_access_epoch_delete AFTER DELETE ON machine_projects BEGIN UPDATE access_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER grants_access_epoch_insert AFTER INSERT ON grants BEGIN UPDATE access_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER grants_access_epoch_update AFTER UPDATE ON grants BEGIN UPDATE access_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER grants_access_epoch_delete AFTER DELETE ON grants BEGIN UPDATE access_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER canaries_access_epoch_insert AFTER INSERT ON canaries BEGIN UPDATE access_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER canaries_access_epoch_update AFTER UPDATE ON canaries BEGIN UPDATE access_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER canaries_access_epoch_delete AFTER DELETE ON canaries BEGIN UPDATE access_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE INDEX ix_user_sessions_user ON user_sessions (user_id);
CREATE INDEX ix_role_bindings_user ON role_bindings (user_id);
CREATE INDEX ix_role_bindings_group ON role_bindings (group_name);
CREATE INDEX ix_machines_jwt_role ON machines (jwt_role_id);
CREATE INDEX ix_jwt_uses_expires ON jwt_uses (expires_ms);
CREATE INDEX ix_leases_state_expires ON leases (state, expires_ms);
CREATE INDEX ix_leases_state_next ON leases (state, next_attempt_ms);
CREATE INDEX ix_leases_machine ON leases (machine_id, dynamic_secret_id, state);
CREATE INDEX ix_leases_dynamic ON leases (dynamic_secret_id, state);
CREATE INDEX ix_leases_vault ON leases (vault_id, id);
CREATE INDEX ix_login_failures_window ON login_failures (window_start_ms);
