#!/bin/bash
# Drives a memcached on 127.0.0.1:11211 with a fixed session: one
# request at a time on connection 1, a pipelined burst on connection 2.
set -e
step() { printf "$1" >&3; sleep 0.05; }
exec 3<>/dev/tcp/127.0.0.1/11211
cat <&3 >/tmp/mc/conn1.out &
step 'set user:1 5 0 5\r\nalice\r\n'
step 'get user:1\r\n'
step 'gets user:1\r\n'
step 'get nokey\r\n'
step 'set user:2 0 0 3\r\nbob\r\n'
step 'get user:1 nokey user:2\r\n'
step 'add user:1 0 0 1\r\nx\r\n'
step 'replace nokey 0 0 1\r\nx\r\n'
step 'append user:2 0 0 3\r\nby!\r\n'
step 'prepend user:2 0 0 2\r\nmr\r\n'
step 'cas user:1 0 0 3 1\r\nzzz\r\n'
step 'set counter 0 0 2\r\n10\r\n'
step 'incr counter 5\r\n'
step 'decr counter 20\r\n'
step 'incr nokey 1\r\n'
step 'incr user:1 1\r\n'
step 'touch user:1 100\r\n'
step 'delete user:2\r\n'
step 'delete user:2\r\n'
step 'bogus\r\n'
step 'set bad 0 0 2\r\nabcd\r\n'
step 'set quiet 0 0 1 noreply\r\nq\r\n'
step 'get quiet\r\n'
step 'mg user:1 v f\r\n'
step 'ms meta 4\r\nmeta\r\n'
step 'md meta\r\n'
step 'mg meta v\r\n'
step 'mn\r\n'
step 'version\r\n'
step 'quit\r\n'
wait
exec 4<>/dev/tcp/127.0.0.1/11211
cat <&4 >/tmp/mc/conn2.out &
printf 'set p1 0 0 2\r\nv1\r\nset p2 0 0 2\r\nv2\r\nget p1 p2\r\ndelete p1\r\nget p1\r\nquit\r\n' >&4
wait
