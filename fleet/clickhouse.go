package fleet

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client talks to one ClickHouse server over its HTTP interface. It is
// safe for concurrent use.
//
// Why HTTP and not the native protocol: 18.16, the server Debian ships,
// predates what the official Go client needs, and the HTTP interface with
// JSONEachRow is the same on every version since.
type Client struct {
	base     *url.URL
	database string
	http     *http.Client
}

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithTimeout bounds each request, connection to last byte (default 60 s).
// A context deadline shorter than it wins.
func WithTimeout(d time.Duration) ClientOption {
	return func(c *Client) { c.http.Timeout = d }
}

// WithHTTPClient replaces the HTTP client (TLS to a remote server, a proxy).
func WithHTTPClient(h *http.Client) ClientOption {
	return func(c *Client) { c.http = h }
}

// NewClient returns a client of the server at rawURL (http://host:8123,
// optionally with user:password@ and ?setting=value parameters sent with
// every request) using database for unqualified table names ("" means the
// server's default database).
func NewClient(rawURL, database string, opts ...ClientOption) (*Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("clickhouse URL %q: %w", rawURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("clickhouse URL %q: want http://HOST:PORT (the HTTP interface, default port 8123)", rawURL)
	}
	c := &Client{base: u, database: database, http: &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     30 * time.Second,
		},
	}}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Database is the database unqualified names resolve in.
func (c *Client) Database() string { return c.database }

// WithDatabase returns a client of the same server using database.
func (c *Client) WithDatabase(database string) *Client {
	d := *c
	d.database = database
	return &d
}

// Error is an error ClickHouse answered with: the HTTP status and its
// message (which starts "Code: N, e.displayText() = ..." on 18.16).
type Error struct {
	Status  int
	Code    int // ClickHouse's error code, 0 if the message has none
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("clickhouse: HTTP %d: %s", e.Status, e.Message)
}

// Retryable reports whether err is worth retrying unchanged: the server
// unreachable, a timeout, or an overload/availability answer (HTTP 5xx
// other than a failed statement). A statement ClickHouse rejected (bad
// SQL, a type mismatch) is not.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	var ce *Error
	if errors.As(err, &ce) {
		switch ce.Code {
		case 202, 203, 209, 210, 241, 242, 252, 319, 425:
			// TOO_MANY_SIMULTANEOUS_QUERIES, NO_FREE_CONNECTION,
			// SOCKET_TIMEOUT, NETWORK_ERROR, MEMORY_LIMIT_EXCEEDED,
			// TABLE_IS_READ_ONLY, TOO_MANY_PARTS, UNKNOWN_STATUS_OF_INSERT,
			// SYSTEM_ERROR
			return true
		}
		return ce.Status == http.StatusServiceUnavailable || ce.Status == http.StatusBadGateway || ce.Status == http.StatusGatewayTimeout
	}
	return true // transport errors: refused, reset, timed out
}

// do sends one request: query in the URL (so the body can carry data), body
// as the request body.
func (c *Client) do(ctx context.Context, query string, body io.Reader) (*http.Response, error) {
	u := *c.base
	q := u.Query()
	q.Set("query", query)
	if c.database != "" {
		q.Set("database", c.database)
	}
	if ui := c.base.User; ui != nil {
		// URL parameters: 18.16 predates the X-ClickHouse-User headers.
		pw, _ := ui.Password()
		q.Set("user", ui.Username())
		q.Set("password", pw)
	}
	u.RawQuery = q.Encode()
	u.User = nil
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), body)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// The request URL carries the password and the statement: the
		// error names the server only (the caller adds the statement).
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = c.base.Scheme + "://" + c.base.Host + "/"
		}
		return nil, fmt.Errorf("clickhouse %s: %w", c.base.Host, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, newError(resp.StatusCode, string(msg))
	}
	return resp, nil
}

func newError(status int, msg string) *Error {
	msg = strings.TrimSpace(msg)
	e := &Error{Status: status, Message: msg}
	if rest, ok := strings.CutPrefix(msg, "Code: "); ok {
		n := 0
		for _, ch := range rest {
			if ch < '0' || ch > '9' {
				break
			}
			n = n*10 + int(ch-'0')
		}
		e.Code = n
	}
	return e
}

// Exec runs a statement that returns no rows (DDL, INSERT ... SELECT).
func (c *Client) Exec(ctx context.Context, sql string) error {
	resp, err := c.do(ctx, sql, nil)
	if err != nil {
		return fmt.Errorf("%w (statement: %s)", err, firstLine(sql))
	}
	io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// Insert inserts rows, each marshalled with encoding/json, into table with
// one INSERT ... FORMAT JSONEachRow: the whole batch in one request, which
// ClickHouse applies as one block (all or nothing for up to
// max_insert_block_size rows, 1M by default).
func (c *Client) Insert(ctx context.Context, table string, rows []any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("insert into %s: encode row: %w", table, err)
		}
	}
	return c.InsertJSON(ctx, table, buf.Bytes())
}

// InsertJSON inserts rows already encoded as JSONEachRow (one JSON object
// per line) into table.
func (c *Client) InsertJSON(ctx context.Context, table string, jsonRows []byte) error {
	if len(jsonRows) == 0 {
		return nil
	}
	resp, err := c.do(ctx, "INSERT INTO "+table+" FORMAT JSONEachRow", bytes.NewReader(jsonRows))
	if err != nil {
		return fmt.Errorf("insert into %s: %w", table, err)
	}
	io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// Query runs a SELECT and returns its rows as JSON objects (FORMAT
// JSONEachRow is appended). 64-bit integers come back as JSON strings
// (ClickHouse quotes them by default), so decode them with ",string" tags
// or read them as json.Number / strings.
func (c *Client) Query(ctx context.Context, sql string) ([]map[string]any, error) {
	var rows []map[string]any
	err := c.QueryFunc(ctx, sql, func(line []byte) error {
		var m map[string]any
		d := json.NewDecoder(bytes.NewReader(line))
		d.UseNumber()
		if err := d.Decode(&m); err != nil {
			return err
		}
		rows = append(rows, m)
		return nil
	})
	return rows, err
}

// QueryFunc runs a SELECT and calls fn with each row, one JSON object
// (JSONEachRow), streaming: the result need not fit in memory. line is
// valid until fn returns.
func (c *Client) QueryFunc(ctx context.Context, sql string, fn func(line []byte) error) error {
	resp, err := c.do(ctx, sql+" FORMAT JSONEachRow", nil)
	if err != nil {
		return fmt.Errorf("%w (query: %s)", err, firstLine(sql))
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		// An error after the header was sent arrives in the body.
		if bytes.HasPrefix(line, []byte("Code: ")) {
			return fmt.Errorf("%w (query: %s)", newError(resp.StatusCode, string(line)), firstLine(sql))
		}
		if err := fn(line); err != nil {
			return fmt.Errorf("query %s: row: %w", firstLine(sql), err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("query %s: read result: %w", firstLine(sql), err)
	}
	return nil
}

// QueryValue runs a SELECT of one value (one row, one column, e.g. a
// count()) and returns it as text.
func (c *Client) QueryValue(ctx context.Context, sql string) (string, error) {
	resp, err := c.do(ctx, sql+" FORMAT TabSeparated", nil)
	if err != nil {
		return "", fmt.Errorf("%w (query: %s)", err, firstLine(sql))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("query %s: read result: %w", firstLine(sql), err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Ping checks that the server answers a query.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.QueryValue(ctx, "SELECT 1")
	return err
}

// firstLine shortens a statement for an error message.
func firstLine(sql string) string {
	sql = strings.TrimSpace(sql)
	if i := strings.IndexByte(sql, '\n'); i >= 0 {
		sql = sql[:i] + " ..."
	}
	if len(sql) > 120 {
		sql = sql[:120] + "..."
	}
	return sql
}
