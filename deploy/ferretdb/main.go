// Command ferretdb runs FerretDB v1 (MongoDB wire protocol) through its embeddable package.
//
// Why not build upstream's cmd/ferretdb: built from a module zip it panics at start, because its
// build/version/version.txt is only generated in a git checkout. The embeddable package skips that
// check when the main module is not FerretDB's own, and serves the same handlers.
//
// Why the _id index keeper: FerretDB v1.24's SQLite backend indexes each table on
// _ferretdb_sjson->"_id" but looks documents up by _ferretdb_sjson->'$._id', an expression SQLite
// does not match to that index, so every find, update and upsert by _id scans the whole table.
// The keeper adds an index on the expression the queries use, for every collection table.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	_ "modernc.org/sqlite" // the SQLite driver FerretDB itself uses
)

func main() {
	listenAddr := flag.String("listen-addr", "127.0.0.1:27017", "TCP address to listen on")
	handler := flag.String("handler", "sqlite", "backend: sqlite or postgresql")
	sqliteURL := flag.String("sqlite-url", "file:data/", "SQLite directory URL (the directory must exist)")
	postgresqlURL := flag.String("postgresql-url", "", "PostgreSQL URL when -handler=postgresql")
	logLevel := flag.String("log-level", "warn", "debug, info, warn or error")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "invalid -log-level %q: %v\n", *logLevel, err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	server, err := ferretdb.New(&ferretdb.Config{
		Listener:      ferretdb.ListenerConfig{TCP: *listenAddr},
		Logger:        logger,
		Handler:       *handler,
		SQLiteURL:     *sqliteURL,
		PostgreSQLURL: *postgresqlURL,
	})
	if err != nil {
		logger.Error("cannot start FerretDB", "error", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *handler == "sqlite" {
		go keepIDIndexes(ctx, logger, *sqliteURL)
	}

	logger.Info("FerretDB listening", "uri", server.MongoDBURI())
	if err := server.Run(ctx); err != nil {
		logger.Error("FerretDB stopped with an error", "error", err)
		os.Exit(1)
	}
}

// keepIDIndexes adds, every two seconds, the missing _id expression index to each collection table of
// each database file in the SQLite directory. It opens each file only for that moment: a connection kept
// open would outlive a dropDatabase (which deletes the file) and share the new file's WAL index with a
// deleted one, which SQLite reports as a disk I/O error.
func keepIDIndexes(ctx context.Context, logger *slog.Logger, sqliteURL string) {
	parsed, err := url.Parse(sqliteURL)
	if err != nil {
		logger.Error("cannot parse -sqlite-url; _id indexes are not kept", "error", err)
		return
	}
	dir := parsed.Opaque
	if dir == "" {
		dir = parsed.Path
	}
	ticker := time.NewTicker(2 * time.Second)
	defer ticker.Stop()
	for {
		files, _ := filepath.Glob(filepath.Join(dir, "*.sqlite"))
		for _, file := range files {
			if err := indexFile(ctx, file); err != nil && ctx.Err() == nil {
				logger.Debug("cannot index tables", "file", file, "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func indexFile(ctx context.Context, file string) error {
	db, err := sql.Open("sqlite", "file:"+file+"?mode=rw&_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	return indexTables(ctx, db)
}

func indexTables(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, `SELECT table_name FROM _ferretdb_collections`)
	if err != nil {
		return err
	}
	var tables []string
	for rows.Next() {
		var table string
		if err := rows.Scan(&table); err == nil {
			tables = append(tables, table)
		}
	}
	rows.Close()
	for _, table := range tables {
		quoted := `"` + strings.ReplaceAll(table, `"`, `""`) + `"`
		index := `"` + strings.ReplaceAll(table+"__id_lookup", `"`, `""`) + `"`
		statement := `CREATE INDEX IF NOT EXISTS ` + index + ` ON ` + quoted + ` (_ferretdb_sjson->'$._id')`
		if _, err := db.ExecContext(ctx, statement); err != nil {
			return err
		}
	}
	return nil
}
