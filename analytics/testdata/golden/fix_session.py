# Loopback FIX 4.4 session: a client sends orders, a server answers with
# execution reports. Real kernel TCP on 127.0.0.1; the messages are built
# here with correct BodyLength (9) and CheckSum (10).
import socket, threading, time
SOH = b"\x01"
def msg(fields, seq, sender, target):
    body = [b"35=" + fields[0]] + [b"49=" + sender, b"56=" + target, b"34=%d" % seq, b"52=20261207-05:30:00.000"] + fields[1:]
    b = SOH.join(body) + SOH
    head = b"8=FIX.4.4" + SOH + b"9=%d" % len(b) + SOH
    m = head + b
    return m + b"10=%03d" % (sum(m) % 256) + SOH
def server(ls):
    c, _ = ls.accept()
    seq = 1
    buf = b""
    while True:
        d = c.recv(4096)
        if not d:
            break
        buf += d
        while b"\x0110=" in buf:
            i = buf.index(b"\x0110=") + 8
            m, buf = buf[:i], buf[i:]
            t = m.split(b"\x0135=")[1].split(SOH)[0]
            f = dict(x.split(b"=", 1) for x in m.split(SOH) if b"=" in x)
            time.sleep(0.003)
            if t == b"A":
                c.sendall(msg([b"A", b"98=0", b"108=30"], seq, b"SRV", b"CLI"))
            elif t == b"D":
                c.sendall(msg([b"8", b"37=O" + f[b"11"], b"11=" + f[b"11"], b"17=E" + f[b"11"], b"150=0", b"39=0", b"55=" + f[b"55"], b"54=" + f[b"54"], b"38=" + f[b"38"], b"151=" + f[b"38"], b"14=0", b"6=0"], seq, b"SRV", b"CLI"))
            elif t == b"F":
                c.sendall(msg([b"8", b"37=O" + f[b"41"], b"11=" + f[b"11"], b"41=" + f[b"41"], b"17=X" + f[b"11"], b"150=4", b"39=4", b"55=" + f[b"55"], b"54=" + f[b"54"], b"151=0", b"14=0", b"6=0"], seq, b"SRV", b"CLI"))
            elif t == b"5":
                c.sendall(msg([b"5"], seq, b"SRV", b"CLI"))
                c.close()
                return
            seq += 1
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 9878)); ls.listen(1)
th = threading.Thread(target=server, args=(ls,)); th.start()
s = socket.create_connection(("127.0.0.1", 9878))
seq = 1
def send(fields):
    global seq
    s.sendall(msg(fields, seq, b"CLI", b"SRV")); seq += 1
    time.sleep(0.02)
    s.recv(4096)
send([b"A", b"98=0", b"108=30"])
send([b"D", b"11=ORD-1", b"21=1", b"55=AAPL", b"54=1", b"60=20261207-05:30:00.000", b"38=100", b"40=2", b"44=190.5"])
send([b"D", b"11=ORD-2", b"21=1", b"55=MSFT", b"54=2", b"60=20261207-05:30:00.000", b"38=50", b"40=1"])
send([b"F", b"11=CXL-1", b"41=ORD-1", b"55=AAPL", b"54=1", b"60=20261207-05:30:00.000", b"38=100"])
send([b"D", b"11=ORD-3", b"21=1", b"55=IBM", b"54=1", b"60=20261207-05:30:00.000", b"38=10", b"40=1"])
send([b"5"])
s.close(); th.join()
