#!/bin/bash
# A PostgreSQL 15 server on 127.0.0.1:5432 (trust auth, ssl off), driven by
# psql over TCP with simple queries: rows, DDL/DML tags, an error, a
# transaction rolled back. Captured with tcpdump -i lo 'tcp port 5432'.
set -e
su postgres -s /bin/sh -c "initdb -D /tmp/pgd/data -A trust -U postgres && pg_ctl -D /tmp/pgd/data -o '-c listen_addresses=127.0.0.1 -c port=5432 -c unix_socket_directories=/tmp/pgd -c ssl=off' -l /tmp/pgd/log start"
PGSSLMODE=disable psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -q <<'SQL'
SELECT 1;
CREATE TABLE orders (id int PRIMARY KEY, sym text, qty int);
INSERT INTO orders VALUES (1, 'AAPL', 100), (2, 'MSFT', 50), (3, 'IBM', 10);
SELECT sym, qty FROM orders ORDER BY id;
SELECT * FROM no_such_table;
BEGIN;
UPDATE orders SET qty = qty + 1 WHERE sym = 'IBM';
ROLLBACK;
SELECT count(*) FROM orders;
DROP TABLE orders;
SQL
su postgres -s /bin/sh -c "pg_ctl -D /tmp/pgd/data stop"
