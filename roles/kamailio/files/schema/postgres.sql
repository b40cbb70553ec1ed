-- Tables of the sipwave proxy (PostgreSQL). Columns follow Kamailio's own schema for the
-- table versions recorded below; the subscriber table has no password column on purpose:
-- only HA1 hashes are stored.
CREATE TABLE IF NOT EXISTS version (
    id SERIAL PRIMARY KEY NOT NULL,
    table_name VARCHAR(32) NOT NULL,
    table_version INTEGER DEFAULT 0 NOT NULL,
    CONSTRAINT version_table_name_idx UNIQUE (table_name)
);

CREATE TABLE IF NOT EXISTS subscriber (
    id SERIAL PRIMARY KEY NOT NULL,
    username VARCHAR(64) DEFAULT '' NOT NULL,
    domain VARCHAR(64) DEFAULT '' NOT NULL,
    ha1 VARCHAR(128) DEFAULT '' NOT NULL,
    ha1b VARCHAR(128) DEFAULT '' NOT NULL,
    CONSTRAINT subscriber_account_idx UNIQUE (username, domain)
);
CREATE INDEX IF NOT EXISTS subscriber_username_idx ON subscriber (username);
INSERT INTO version (table_name, table_version) VALUES ('subscriber', 7) ON CONFLICT DO NOTHING;

CREATE TABLE IF NOT EXISTS location (
    id SERIAL PRIMARY KEY NOT NULL,
    ruid VARCHAR(64) DEFAULT '' NOT NULL,
    username VARCHAR(64) DEFAULT '' NOT NULL,
    domain VARCHAR(64) DEFAULT NULL,
    contact VARCHAR(512) DEFAULT '' NOT NULL,
    received VARCHAR(128) DEFAULT NULL,
    path VARCHAR(512) DEFAULT NULL,
    expires TIMESTAMP WITHOUT TIME ZONE DEFAULT '2030-05-28 21:32:15' NOT NULL,
    q REAL DEFAULT 1.0 NOT NULL,
    callid VARCHAR(255) DEFAULT 'Default-Call-ID' NOT NULL,
    cseq INTEGER DEFAULT 1 NOT NULL,
    last_modified TIMESTAMP WITHOUT TIME ZONE DEFAULT '2000-01-01 00:00:01' NOT NULL,
    flags INTEGER DEFAULT 0 NOT NULL,
    cflags INTEGER DEFAULT 0 NOT NULL,
    user_agent VARCHAR(255) DEFAULT '' NOT NULL,
    socket VARCHAR(64) DEFAULT NULL,
    methods INTEGER DEFAULT NULL,
    instance VARCHAR(255) DEFAULT NULL,
    reg_id INTEGER DEFAULT 0 NOT NULL,
    server_id INTEGER DEFAULT 0 NOT NULL,
    connection_id INTEGER DEFAULT 0 NOT NULL,
    keepalive INTEGER DEFAULT 0 NOT NULL,
    partition INTEGER DEFAULT 0 NOT NULL,
    CONSTRAINT location_ruid_idx UNIQUE (ruid)
);
CREATE INDEX IF NOT EXISTS location_account_contact_idx ON location (username, domain, contact);
CREATE INDEX IF NOT EXISTS location_expires_idx ON location (expires);
INSERT INTO version (table_name, table_version) VALUES ('location', 9) ON CONFLICT DO NOTHING;

CREATE TABLE IF NOT EXISTS location_attrs (
    id SERIAL PRIMARY KEY NOT NULL,
    ruid VARCHAR(64) DEFAULT '' NOT NULL,
    username VARCHAR(64) DEFAULT '' NOT NULL,
    domain VARCHAR(64) DEFAULT NULL,
    aname VARCHAR(64) DEFAULT '' NOT NULL,
    atype INTEGER DEFAULT 0 NOT NULL,
    avalue VARCHAR(512) DEFAULT '' NOT NULL,
    last_modified TIMESTAMP WITHOUT TIME ZONE DEFAULT '2000-01-01 00:00:01' NOT NULL
);
INSERT INTO version (table_name, table_version) VALUES ('location_attrs', 1) ON CONFLICT DO NOTHING;

-- Numbers served on this platform (Kamailio's alias_db table, written by the migration
-- engine): alias_username is the number in E.164 without "+".
CREATE TABLE IF NOT EXISTS dbaliases (
    id SERIAL PRIMARY KEY NOT NULL,
    alias_username VARCHAR(64) DEFAULT '' NOT NULL,
    alias_domain VARCHAR(64) DEFAULT '' NOT NULL,
    username VARCHAR(64) DEFAULT '' NOT NULL,
    domain VARCHAR(64) DEFAULT '' NOT NULL
);
CREATE INDEX IF NOT EXISTS alias_idx ON dbaliases (alias_username, alias_domain);
CREATE INDEX IF NOT EXISTS alias_target_idx ON dbaliases (username, domain);
INSERT INTO version (table_name, table_version) VALUES ('dbaliases', 1) ON CONFLICT DO NOTHING;

-- Engine tables of sipwave.platform.wave that the routing view reads (the engine creates
-- them too, with the same definitions, on a database made without this file).
CREATE TABLE IF NOT EXISTS sipwave_account (
    login VARCHAR(64) PRIMARY KEY NOT NULL,
    state VARCHAR(16) NOT NULL,
    wave VARCHAR(64) NOT NULL,
    legacy_domain VARCHAR(64) NOT NULL,
    current_username VARCHAR(64),
    current_domain VARCHAR(64),
    grace_until VARCHAR(10),
    department VARCHAR(128) DEFAULT '' NOT NULL,
    balance VARCHAR(32) DEFAULT '0.00' NOT NULL,
    updated_at VARCHAR(32) NOT NULL,
    run_id VARCHAR(64) NOT NULL
);
CREATE TABLE IF NOT EXISTS sipwave_number (
    number VARCHAR(16) NOT NULL,
    login VARCHAR(64) NOT NULL,
    kind VARCHAR(8) NOT NULL,
    state VARCHAR(16) NOT NULL,
    PRIMARY KEY (number, login, kind)
);
CREATE INDEX IF NOT EXISTS sipwave_number_login_idx ON sipwave_number (login);
-- One row: counted up by every engine run that changes routing data.
CREATE TABLE IF NOT EXISTS sipwave_routing_generation (
    id INTEGER PRIMARY KEY NOT NULL,
    generation INTEGER NOT NULL
);
INSERT INTO sipwave_routing_generation (id, generation) VALUES (1, 0)
    ON CONFLICT DO NOTHING;

-- What the router's routing cache (htable "routing") loads, in the htable columns:
--   i:user@domain      an identity served here (it has a subscriber row)
--   n:digits           a number served here (dbaliases) -> user@domain
--   a:user@domain      the number an identity presents as caller (dial-in): its
--                      first number (lowest dbaliases id) -> +digits
--   c:login            a closed account (its requests are refused, 403 Account Closed)
--   p:digits           a closed account's number -> kept_for_porting or released
--   g:generation       the generation of this content (see sipwave_routing_generation)
CREATE OR REPLACE VIEW sipwave_routing AS
    SELECT 'i:' || username || '@' || lower(domain) AS key_name, 0 AS key_type,
           1 AS value_type, '1'::TEXT AS key_value, 0 AS expires
    FROM subscriber
    UNION ALL
    SELECT 'n:' || alias_username, 0, 0, username || '@' || lower(domain), 0
    FROM dbaliases
    UNION ALL
    SELECT 'a:' || username || '@' || lower(domain), 0, 0, '+' || alias_username, 0
    FROM dbaliases
    WHERE id IN (SELECT MIN(id) FROM dbaliases GROUP BY username, lower(domain))
    UNION ALL
    SELECT 'c:' || login, 0, 1, '1', 0
    FROM sipwave_account WHERE state = 'closed'
    UNION ALL
    -- kept_for_porting sorts first: a number kept by one closed account and released by
    -- another is still kept.
    SELECT 'p:' || ltrim(number, '+'), 0, 0, MIN(state), 0
    FROM sipwave_number
    WHERE kind = 'number' AND state IN ('kept_for_porting', 'released')
    GROUP BY number
    UNION ALL
    SELECT 'g:generation', 0, 1, CAST(COALESCE(MAX(generation), 0) AS TEXT), 0
    FROM sipwave_routing_generation;
