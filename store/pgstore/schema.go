package pgstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// migrations are applied in order, each once, in one transaction per call to
// New. Never edit a released migration: append a new one. "%[1]s" is the
// quoted schema name.
var migrations = []string{
	// 1: the event log, the rows of typed tables, and checkpoints.
	`
CREATE TABLE %[1]s.events (
	-- position = append_xid << 16 | index within the unit of work; see the
	-- package doc for why it is not taken from a sequence.
	position    bigint      PRIMARY KEY CHECK (position > 0),
	-- The id of the subtransaction that appended the event.
	append_xid  xid8        NOT NULL,
	id          uuid        NOT NULL,
	stream      text        NOT NULL,
	version     bigint      NOT NULL CHECK (version > 0),
	type        text        NOT NULL,
	data        jsonb       NOT NULL,
	metadata    jsonb       NOT NULL DEFAULT '{}',
	recorded_at timestamptz NOT NULL,
	-- Decides optimistic concurrency on streams: of two writers that append
	-- the same version, the second fails with unique_violation.
	CONSTRAINT events_stream_version_key UNIQUE (stream, version)
);

-- One row per server process that has appended. Updating its own row is how
-- an append learns the id of its subtransaction (the new row version's
-- xmin); no two transactions touch the same row at once.
CREATE TABLE %[1]s.appenders (
	pid     integer PRIMARY KEY,
	appends bigint  NOT NULL DEFAULT 0
);

CREATE TABLE %[1]s.rows (
	table_name text   NOT NULL,
	key        text   NOT NULL,
	version    bigint NOT NULL CHECK (version > 0),
	data       jsonb  NOT NULL,
	PRIMARY KEY (table_name, key)
);

CREATE TABLE %[1]s.checkpoints (
	name       text        PRIMARY KEY,
	position   bigint      NOT NULL,
	version    integer     NOT NULL DEFAULT 0,
	updated_at timestamptz NOT NULL DEFAULT now()
);
`,
	// 2: dead letters (projection.ParkStore). The record stays in events;
	// only its position and the failure are kept. No foreign key to
	// checkpoints: a projector may park before its first checkpoint save.
	`
CREATE TABLE %[1]s.dead_letters (
	name      text        NOT NULL,
	position  bigint      NOT NULL,
	err       text        NOT NULL,
	attempts  integer     NOT NULL,
	parked_at timestamptz NOT NULL,
	PRIMARY KEY (name, position)
);
`,
	// 3: leases (projection.Leaser). A row is never deleted: a released
	// lease keeps its token, so tokens for a name only ever grow.
	`
CREATE TABLE %[1]s.leases (
	name    text        PRIMARY KEY,
	owner   text        NOT NULL, -- '' once released
	token   bigint      NOT NULL CHECK (token > 0),
	expires timestamptz NOT NULL  -- by the server's clock
);
`,
}

// migrate brings the schema up to date. The advisory lock is taken before
// anything else, so concurrent callers run one after the other and each finds
// the work of the previous one done; it is released with the transaction.
func (s *Store) migrate(ctx context.Context) error {
	q := pgx.Identifier{s.schema}.Sanitize()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey(s.schema)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+q); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+q+`.schema_migrations (
			version    integer     PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		var done int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+q+`.schema_migrations`).Scan(&done); err != nil {
			return err
		}
		if done > len(migrations) {
			return fmt.Errorf("schema %s is at version %d, newer than this build knows (%d)", s.schema, done, len(migrations))
		}
		for v := done + 1; v <= len(migrations); v++ {
			if _, err := tx.Exec(ctx, fmt.Sprintf(migrations[v-1], q)); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO `+q+`.schema_migrations (version) VALUES ($1)`, v); err != nil {
				return err
			}
		}
		return nil
	})
	return wrap(ctx, "migrate schema "+s.schema, err)
}

// horizon is the SQL expression for the lowest position that a transaction
// still running (or not yet started) could add: every transaction id below the
// snapshot's xmin has ended, and a running transaction's subtransactions
// have ids above its own, so all positions below xmin << 16 are final.
const horizon = `(pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 16)`

// appendEvents completes insertEvents and insertEventsTop, given x, the id
// that the positions are made of (MATERIALIZED, or it is computed per row).
// The event ids come from the caller, in binary: gen_random_uuid() would
// cost the server more than the rest of the row. idx
// is the event's index in record order. A stream with base >= 0 was pinned
// by ExpectVersion and continues from that version; the others continue
// from the newest committed version, read once per stream before the first
// row is inserted (MATERIALIZED): read per row, it would wade through the
// index entries this statement has just added. If a concurrent writer takes
// that version, the caller retries. Rows are inserted in the order of the
// arrays (n), which the caller sorts by stream. The metadata, the same for
// every row, is parsed once. Only the last position comes back.
const appendEvents = `u AS (
	SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $9::uuid[])
		WITH ORDINALITY AS u(idx, stream, base, k, type, data, eid, n)
), heads AS MATERIALIZED (
	SELECT s.stream, coalesce((SELECT max(e.version) FROM $schema.events e WHERE e.stream = s.stream), 0) AS head
	FROM (SELECT DISTINCT stream FROM u WHERE base < 0) s
), m AS MATERIALIZED (SELECT $7::jsonb AS metadata
), ins AS (
	INSERT INTO $schema.events (position, append_xid, id, stream, version, type, data, metadata, recorded_at)
	SELECT (x.id << 16) | u.idx, x.id::text::xid8, u.eid, u.stream,
		CASE WHEN u.base >= 0 THEN u.base ELSE h.head END + u.k,
		u.type, u.data::jsonb, m.metadata, $8
	FROM x CROSS JOIN m CROSS JOIN u LEFT JOIN heads h ON h.stream = u.stream
	ORDER BY u.n
	RETURNING position
)
SELECT max(position) FROM ins`

// queries holds the store's SQL with the schema name filled in once.
type queries struct {
	streamVersion, streamVersions string
	insertEvents, insertEventsTop string
	read, head                    string
	heads, countEvents, blocker   string
	getRow, upsertRow             string
	insertRow, updateRow          string
	rowVersion, deleteRow         string
	loadCheckpoint                string
	saveCheckpoint                string
	lockCheckpoint                string
	advanceCheckpoint             string
	park, unpark, loadParked      string
	lockParked, clearParked       string
	insertParked                  string
	acquireLease, renewLease      string
	releaseLease, leaseHolder     string
	listLeases, lockLease         string
}

func buildQueries(schema string) queries {
	r := strings.NewReplacer("$schema", schema, "$horizon", horizon)
	q := queries{
		streamVersion: `SELECT coalesce(max(version), 0) FROM $schema.events WHERE stream = $1`,
		streamVersions: `SELECT s, coalesce((SELECT max(version) FROM $schema.events WHERE stream = s), 0)
			FROM unnest($1::text[]) AS s`,
		// One statement appends every event of the unit of work, inside a
		// fresh savepoint. The probe gives that subtransaction its id now,
		// at append time, and reads it back as the 32-bit xmin of the
		// appenders row, widened to 64 bits with the epoch of the
		// top-level id (a subtransaction id is never older than its
		// parent's). See appendEvents for the rest.
		insertEvents: `
WITH probe AS (
	INSERT INTO $schema.appenders AS a (pid) VALUES (pg_backend_pid())
	ON CONFLICT (pid) DO UPDATE SET appends = a.appends + 1
	RETURNING xmin::text::bigint AS sub
), x AS (
	SELECT ((t.top >> 32) + CASE WHEN p.sub < (t.top & 4294967295) THEN 1 ELSE 0 END) << 32 | p.sub AS id
	FROM probe p, (SELECT pg_current_xact_id()::text::bigint AS top) t
), ` + appendEvents,
		// The same append as the first write of a transaction that has
		// run nothing else: its own id is as fresh as a subtransaction's,
		// and needs no probe.
		insertEventsTop: `
WITH x AS MATERIALIZED (SELECT pg_current_xact_id()::text::bigint AS id), ` + appendEvents,
		read: `SELECT position, id, stream, version, type, data, metadata, recorded_at FROM $schema.events
			WHERE position > $1 AND position < $horizon ORDER BY position LIMIT $2`,
		head: `SELECT coalesce(max(position), 0) FROM $schema.events WHERE position < $horizon`,
		// Committed and readable heads in one snapshot; both use the
		// primary key's index.
		heads: `SELECT coalesce((SELECT max(position) FROM $schema.events), 0),
			coalesce((SELECT max(position) FROM $schema.events WHERE position < $horizon), 0)`,
		countEvents: `SELECT count(*) FROM (SELECT 1 FROM $schema.events
			WHERE position > $1 AND position <= $2 LIMIT $3) s`,
		// The oldest transaction id still running anywhere in the
		// cluster is the snapshot's xmin; prepared transactions count too.
		blocker: `SELECT pid, datname, gid, age FROM (
			SELECT pid, coalesce(datname, '') AS datname, '' AS gid,
				coalesce(extract(epoch FROM now() - xact_start), 0)::float8 AS age, age(backend_xid) AS xage
			FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
			UNION ALL
			SELECT 0, database, gid, extract(epoch FROM now() - prepared)::float8, age(transaction)
			FROM pg_prepared_xacts
		) t ORDER BY xage DESC LIMIT 1`,
		getRow: `SELECT data, version FROM $schema.rows WHERE table_name = $1 AND key = $2`,
		upsertRow: `INSERT INTO $schema.rows AS r (table_name, key, version, data) VALUES ($1, $2, 1, $3)
			ON CONFLICT (table_name, key) DO UPDATE SET data = excluded.data, version = r.version + 1
			RETURNING version`,
		// Waits for a concurrent insert of the same key and then does
		// nothing, so the later of two inserts reports a conflict.
		insertRow: `INSERT INTO $schema.rows (table_name, key, version, data) VALUES ($1, $2, 1, $3)
			ON CONFLICT (table_name, key) DO NOTHING RETURNING version`,
		// Compare-and-set in one statement: under READ COMMITTED a
		// concurrent update makes this one re-check the version after the
		// other commits, so two writers at one version cannot both win.
		updateRow: `UPDATE $schema.rows SET data = $3, version = version + 1
			WHERE table_name = $1 AND key = $2 AND version = $4 RETURNING version`,
		rowVersion:     `SELECT coalesce((SELECT version FROM $schema.rows WHERE table_name = $1 AND key = $2), 0)`,
		deleteRow:      `DELETE FROM $schema.rows WHERE table_name = $1 AND key = $2`,
		loadCheckpoint: `SELECT position, version FROM $schema.checkpoints WHERE name = $1`,
		// Never backwards: positions are unsigned, stored as bigints, so
		// those at or above 1<<63 are negative and rank above the others.
		saveCheckpoint: `INSERT INTO $schema.checkpoints AS c (name, position, version) VALUES ($1, $2, $3)
			ON CONFLICT (name) DO UPDATE SET position = excluded.position, version = excluded.version, updated_at = now()
			WHERE (c.position >= 0 AND excluded.position < 0)
				OR ((c.position < 0) = (excluded.position < 0) AND c.position <= excluded.position)
			RETURNING position`,
		lockCheckpoint: `SELECT position FROM $schema.checkpoints WHERE name = $1 FOR UPDATE`,
		advanceCheckpoint: `INSERT INTO $schema.checkpoints AS c (name, position) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = now()
			WHERE c.position < excluded.position`,
		park: `INSERT INTO $schema.dead_letters (name, position, err, attempts, parked_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (name, position) DO UPDATE
			SET err = excluded.err, attempts = excluded.attempts, parked_at = excluded.parked_at`,
		unpark: `DELETE FROM $schema.dead_letters WHERE name = $1 AND position = $2`,
		// Positions are unsigned: those at or above 1<<63 are stored as
		// negative bigints and sort after the others.
		loadParked: `SELECT position, err, attempts, parked_at FROM $schema.dead_letters
			WHERE name = $1 ORDER BY position < 0, position`,
		// Serialises ReplaceParked calls for one name ($1 is parkLockKey):
		// without it, two of them could each delete the rows committed
		// before they started and both insert, leaving the union.
		lockParked:  `SELECT pg_advisory_xact_lock($1)`,
		clearParked: `DELETE FROM $schema.dead_letters WHERE name = $1`,
		// A concurrent Park may have inserted one of the positions since
		// the DELETE: the new list wins.
		insertParked: `INSERT INTO $schema.dead_letters (name, position, err, attempts, parked_at)
			SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::integer[], $5::timestamptz[])
			ON CONFLICT (name, position) DO UPDATE
			SET err = excluded.err, attempts = excluded.attempts, parked_at = excluded.parked_at`,
		// The lease queries use the server's clock only, so owners on
		// machines with skewed clocks agree on expiry. $3 is the TTL in
		// microseconds. An owner re-acquiring its live lease keeps the
		// token; anyone else, or the same owner after expiry, gets the
		// next one. A live lease of another owner makes the WHERE false:
		// no row comes back.
		acquireLease: `INSERT INTO $schema.leases AS l (name, owner, token, expires)
			VALUES ($1, $2, 1, clock_timestamp() + $3 * interval '1 microsecond')
			ON CONFLICT (name) DO UPDATE SET
				token = CASE WHEN l.owner = excluded.owner AND l.expires > clock_timestamp() THEN l.token ELSE l.token + 1 END,
				owner = excluded.owner, expires = excluded.expires
			WHERE l.owner = excluded.owner OR l.owner = '' OR l.expires <= clock_timestamp()
			RETURNING token, expires`,
		renewLease: `UPDATE $schema.leases SET expires = clock_timestamp() + $3 * interval '1 microsecond'
			WHERE name = $1 AND token = $2 AND owner <> '' AND expires > clock_timestamp()
			RETURNING owner, expires`,
		releaseLease: `UPDATE $schema.leases SET owner = '', expires = '-infinity'
			WHERE name = $1 AND token = $2 AND owner <> ''`,
		leaseHolder: `SELECT owner, token, expires FROM $schema.leases
			WHERE name = $1 AND owner <> '' AND expires > clock_timestamp()`,
		listLeases: `SELECT name, owner, token, expires FROM $schema.leases
			WHERE starts_with(name, $1) AND owner <> '' AND expires > clock_timestamp()
			ORDER BY name COLLATE "C"`,
		// FOR SHARE makes an Acquire that would take the lease over wait
		// for the fenced write's transaction to end.
		lockLease: `SELECT token FROM $schema.leases
			WHERE name = $1 AND owner <> '' AND expires > clock_timestamp() FOR SHARE`,
	}
	for _, p := range []*string{
		&q.acquireLease, &q.renewLease, &q.releaseLease, &q.leaseHolder, &q.listLeases, &q.lockLease,
		&q.streamVersion, &q.streamVersions, &q.insertEvents, &q.insertEventsTop, &q.read, &q.head,
		&q.heads, &q.countEvents, &q.blocker,
		&q.getRow, &q.upsertRow, &q.insertRow, &q.updateRow, &q.rowVersion, &q.deleteRow,
		&q.loadCheckpoint, &q.saveCheckpoint, &q.lockCheckpoint, &q.advanceCheckpoint,
		&q.park, &q.unpark, &q.loadParked, &q.lockParked, &q.clearParked, &q.insertParked,
	} {
		*p = r.Replace(*p)
	}
	return q
}
