"""ocean's gunicorn worker: gevent's run loop, an llhttp parser, one send per answer.

``gunicorn -k ocean.web.worker.OceanWorker`` (the default of ``ocean serve``;
``OCEAN_WORKER_CLASS=gevent`` selects gunicorn's stock gevent worker instead).
It subclasses ``GeventWorker`` and replaces only the per-connection handler:
the run loop, heartbeat, graceful shutdown, ``max_requests`` and ocean's
``post_fork`` hooks (which wrap ``handle`` and ``handle_exit``) are gunicorn's.

Per connection: ``httptools`` (llhttp, C) parses; the WSGI environ is built
here; the request body streams into ``wsgi.input`` as the app reads it (a
pull feeds the parser one ``recv`` at a time, so nothing is buffered ahead of
the reader but one read); each response goes out in one ``sendall`` (head and
body together) unless the app streams (SSE), which is sent chunk by chunk.

Idle keep-alive connections, and clients that send their request head too
slowly, are closed by one sweeper greenlet per worker (``keepalive`` seconds,
gunicorn's setting), not by a timer around every read.

PERF: with the same settings and ``wrk -t1 -c50``, this handler spends 27 us of
worker CPU per ``GET /health`` against the stock worker's 108, and 37 against 132
per ``POST /exec`` incr: about 3x the requests per core (figures in docs/http.md).
The stock one spends most of a request in its pure-Python parser, its regex
validations, an ``ipaddress`` parse of the peer per request, and two sends per
response. What is left here is mostly the one ``send`` system call per answer.

NOTE: framing is llhttp's (strict mode: Content-Length with Transfer-Encoding,
duplicate Content-Length, bad chunk sizes are parse errors). What gunicorn adds
on top and ocean relies on is kept here: HTTP/1.0 and 1.1 only, chunked only as
the last and only coding, no chunked HTTP/1.0, one Host and one Content-Type,
``Expect: 100-continue`` (anything else: 417), header names with ``_`` refused,
the request line and header limits, ``forwarded_allow_ips`` and
``secure_scheme_headers``.
"""
from __future__ import annotations

import socket
import time
from collections import deque
from email.utils import formatdate
from urllib.parse import unquote_to_bytes

import gevent
import httptools
from gevent.socket import socket as _GeventSocket
from gunicorn.http.message import _ip_in_allow_list
from gunicorn.http.wsgi import base_environ
from gunicorn.workers.ggevent import GeventWorker

from ..errors import BadRequest, OceanError, PayloadTooLarge
from .body import dumps

RECV = 65536
_monotonic = time.monotonic
_perf = time.perf_counter


class _Reject(Exception):
    """A request refused before the app sees it: status line, reason and an ocean error body."""

    def __init__(self, status: str, error: OceanError):
        super().__init__(error.message)
        self.status = status
        self.body = dumps(error.to_dict())


def _bad(message: str, status: str = "400 Bad Request") -> _Reject:
    return _Reject(status, BadRequest(message))


class _BodyError(ValueError):
    """The request body cannot be read: malformed chunks, or the client left mid-body."""


class _Input:
    """``wsgi.input`` of one request: what has arrived, pulled from the socket as it is read.

    ``done`` is the end of the body (llhttp saw the message end), so ``read()``
    returns there: gunicorn's ``wsgi.input_terminated`` semantics.
    """

    __slots__ = ("conn", "buf", "done", "expect")

    def __init__(self, conn):
        self.conn = conn
        self.buf = bytearray()
        self.done = False
        self.expect = False

    def _fill(self, want: int) -> None:
        if self.expect:
            self.expect = False
            if not self.done and not self.buf:
                self.conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        while not self.done and (want < 0 or len(self.buf) < want):
            self.conn.pull(self)

    def read(self, size=-1):
        size = -1 if size is None else size
        self._fill(size)
        buf = self.buf
        if size < 0 or size >= len(buf):
            data = bytes(buf)
            buf.clear()
            return data
        data = bytes(buf[:size])
        del buf[:size]
        return data

    def readline(self, size=-1):
        size = -1 if size is None else size
        while True:
            i = self.buf.find(b"\n")
            if i >= 0 or self.done or 0 <= size <= len(self.buf):
                break
            self.conn.pull(self)
        end = i + 1 if i >= 0 else len(self.buf)
        if 0 <= size < end:
            end = size
        data = bytes(self.buf[:end])
        del self.buf[:end]
        return data

    def readlines(self, hint=-1):
        return list(iter(self.readline, b""))

    def __iter__(self):
        return iter(self.readline, b"")


class _NoBody:
    """``wsgi.input`` of a request without a body."""

    __slots__ = ()
    done = True

    def read(self, size=-1):
        return b""

    readline = read

    def readlines(self, hint=-1):
        return []

    def __iter__(self):
        return iter(())


NO_BODY = _NoBody()
_NO_BODY_STATUS = ("204", "304")
_PROTO = {"1.1": "HTTP/1.1 ", "1.0": "HTTP/1.0 "}
_SPECIAL = {"HTTP_CONTENT_TYPE": "CONTENT_TYPE", "HTTP_CONTENT_LENGTH": "CONTENT_LENGTH"}
_SINGLETON = ("HTTP_HOST", "CONTENT_TYPE")


class _Date:
    """The ``Date`` header line, rebuilt once a second."""

    sec = 0
    line = ""

    @classmethod
    def get(cls) -> str:
        now = time.time()
        if int(now) != cls.sec:
            cls.sec = int(now)
            cls.line = "Date: " + formatdate(now, usegmt=True) + "\r\n"
        return cls.line


class Connection:
    """One client connection: the llhttp protocol callbacks and the request/response loop."""

    def __init__(self, worker, listener, sock, addr):
        self.worker = worker
        self.sock = sock
        self.recv = sock.recv
        self._sendall = sock.sendall
        # PERF: gevent's sendall costs 2.1 us per 300-byte send on a socketpair against 0.7 us for
        # send() on the OS socket (non-blocking under gevent); an answer almost always fits the
        # socket buffer, so one send() does it, and gevent's sendall only takes what did not fit.
        raw = getattr(sock, "_sock", None) if type(sock) is _GeventSocket else None
        self._raw_send = raw.send if raw is not None else None
        self.parser = httptools.HttpRequestParser(self)
        self.pending = deque()
        self.wait_since = None  # set while waiting for a request head (the sweeper reads it)
        self.rejected = None  # a _Reject to answer once the requests before it are served
        self.broken = False  # the parser stopped (error or upgrade): close after what is pending
        self.in_head = False
        self.head_big = False
        self.head_bytes = 0
        self.body = None
        self.url = b""
        self.headers = []
        self.status = None
        self.resp_headers = None
        self.started = False  # the head of the current answer has gone out
        env = dict(worker.base_env)
        if isinstance(addr, tuple):
            env["REMOTE_ADDR"] = addr[0]
            env["REMOTE_PORT"] = str(addr[1])
            self.trusted = worker.trusted(addr[0])
        else:  # a unix socket: gunicorn trusts it
            env["REMOTE_ADDR"] = addr.decode() if isinstance(addr, bytes) else (addr or "")
            self.trusted = True
        env["SERVER_NAME"], env["SERVER_PORT"] = worker.server_name(listener)
        env["gunicorn.socket"] = sock
        self.base_env = env

    # -- llhttp callbacks (run inside parser.feed_data) ------------------------------------------

    def on_message_begin(self):
        self.in_head = True
        self.url = b""
        self.headers = []

    def on_url(self, url):
        self.url += url
        if len(self.url) > self.worker.limit_line:
            raise _Reject("414 URI Too Long", PayloadTooLarge(
                f"the request line is over {self.worker.limit_line} bytes (limit_request_line)"))

    def on_header(self, name, value):
        headers = self.headers
        headers.append((name, value))
        if len(headers) > self.worker.limit_fields:
            raise _Reject("431 Request Header Fields Too Large", PayloadTooLarge(
                f"more than {self.worker.limit_fields} header fields (limit_request_fields)"))

    def on_headers_complete(self):
        self.in_head = False
        self.head_bytes = 0
        parser = self.parser
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise _bad(f"HTTP/{version} is not served; send HTTP/1.1")
        env = self.base_env.copy()
        keys = self.worker.header_keys
        if self.head_big:  # PERF: a head that came in one small read cannot hold a field over the limit
            self._check_fields()
        for name, value in self.headers:
            key = keys.get(name)
            if key is None:
                key = self.worker.header_key(name, self.trusted)
                if key is None:
                    continue  # a name with "_" under gunicorn's header_map = drop
            value = value.decode("latin-1")
            if key in env:
                if key in _SINGLETON:
                    raise _bad(f"more than one {key.replace('HTTP_', '').title()} header")
                env[key] += "," + value
            else:
                env[key] = value
        url = self.url
        if url[:1] == b"/":
            path, _, query = url.partition(b"?")
            if b"#" in url:
                path = path.partition(b"#")[0]
                query = query.partition(b"#")[0]
        else:
            try:
                parts = httptools.parse_url(url)
            except httptools.HttpParserInvalidURLError:
                raise _bad("the request target is not a valid URL") from None
            path, query = parts.path or b"", parts.query or b""
        env["REQUEST_METHOD"] = self.worker.method(parser.get_method())
        env["PATH_INFO"] = (unquote_to_bytes(path) if b"%" in path else path).decode("latin-1")
        env["QUERY_STRING"] = query.decode("latin-1")
        env["RAW_URI"] = url.decode("latin-1")
        env["SERVER_PROTOCOL"] = "HTTP/" + version
        te = env.get("HTTP_TRANSFER_ENCODING")
        if te is not None:
            if te.strip(" \t").lower() != "chunked":
                raise _bad("Transfer-Encoding must be chunked alone")
            if version == "1.0":
                raise _bad("chunked HTTP/1.0 is not served")
            body = _Input(self)
        elif env.get("CONTENT_LENGTH", "0") != "0":
            body = _Input(self)
        else:
            body = NO_BODY
        expect = env.get("HTTP_EXPECT")
        if expect is not None:
            if expect.lower() != "100-continue":
                raise _Reject("417 Expectation Failed", BadRequest(f"Expect: {expect} is not supported"))
            if version == "1.1" and body is not NO_BODY:
                body.expect = True
        if self.trusted and not self.worker.secure_keys.isdisjoint(env):
            self._scheme(env)
        env["wsgi.input"] = body
        self.body = None if body is NO_BODY else body
        self.pending.append((env, body, parser.should_keep_alive()))

    def on_body(self, data):
        self.body.buf += data

    def on_message_complete(self):
        if self.body is not None:
            self.body.done = True
            self.body = None

    def _check_fields(self) -> None:
        limit = self.worker.limit_field_size
        for name, value in self.headers:
            if len(name) + len(value) + 2 > limit:
                raise _Reject("431 Request Header Fields Too Large", PayloadTooLarge(
                    f"a header field is over {limit} bytes (limit_request_field_size)"))

    def _scheme(self, env) -> None:
        scheme = None
        for key, secure in self.worker.secure_headers:
            value = env.get(key)
            if value is not None:
                this = "https" if value == secure else "http"
                if scheme is not None and this != scheme:
                    raise _bad("contradictory scheme headers")
                scheme = this
        if scheme is not None:
            env["wsgi.url_scheme"] = scheme

    # -- reading ---------------------------------------------------------------------------------

    def sendall(self, data: bytes) -> None:
        """Send all of ``data``: one OS send when it fits, gevent's cooperative sendall for the rest."""
        send = self._raw_send
        if send is not None:
            try:
                n = send(data)
            except (BlockingIOError, InterruptedError):
                n = 0
            if n == len(data):
                return
            data = memoryview(data)[n:]
        self._sendall(data)

    def feed(self, data: bytes) -> None:
        """Parse ``data``; a refusal is kept in ``rejected`` for after the requests before it."""
        self.head_big = self.in_head or len(data) > self.worker.limit_field_size
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.broken = True  # an Upgrade/CONNECT: serve its request, then close
        except httptools.HttpParserCallbackError as exc:
            ctx = exc.__context__
            self.rejected = ctx if isinstance(ctx, _Reject) else _bad("the request cannot be parsed")
            self.broken = True
        except httptools.HttpParserError as exc:
            self.rejected = _bad(f"malformed request: {exc}")
            self.broken = True
        else:
            if self.in_head:
                self.head_bytes += len(data)
                if self.head_bytes > self.worker.limit_head:
                    self.rejected = _Reject("431 Request Header Fields Too Large",
                                            PayloadTooLarge("the request head is too large"))
                    self.broken = True

    def pull(self, body: _Input) -> None:
        """The app waits for more of ``body``: one recv, fed to the parser."""
        if self.broken:
            raise _BodyError("the request body is malformed")
        try:
            data = self.recv(RECV)
        except OSError as exc:
            raise _BodyError(f"the client left mid-body ({exc})") from None
        if not data:
            raise _BodyError("the client closed the connection mid-body")
        self.feed(data)
        if self.broken and not body.done:
            raise _BodyError("the request body is malformed")

    # -- the loop --------------------------------------------------------------------------------

    def serve(self) -> None:
        pending = self.pending
        recv = self.recv
        partial = False
        while True:
            if pending:
                self.wait_since = None
                env, body, keep = pending.popleft()
                if not self.respond(env, body, keep and not self.broken):
                    return
                continue
            if self.rejected is not None:
                self.refuse(self.rejected)
                return
            if self.broken:
                return
            if self.wait_since is None:
                self.wait_since = _monotonic()
            try:
                data = recv(RECV)
            except OSError:
                return
            if not data:
                if partial:  # the client ended its side mid-request (or after bare empty lines)
                    self.refuse(_bad("the request ended before its head was complete"))
                return
            self.feed(data)
            partial = self.in_head or not pending

    def refuse(self, rej: _Reject) -> None:
        """Answer a request the parser refused, and let the connection close."""
        head = (f"HTTP/1.1 {rej.status}\r\n{_Date.get()}Connection: close\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(rej.body)}\r\n\r\n")
        try:
            self.sendall(head.encode("latin-1") + rej.body)
        except OSError:
            pass
        self.worker.access(self.base_env.get("REMOTE_ADDR"), "-", "-", rej.status[:3], len(rej.body), 0.0)

    def start_response(self, status, headers, exc_info=None):
        # NOTE: nothing is sent before the app returns, so a second call (with exc_info) replaces the first.
        self.status = status
        self.resp_headers = headers
        return self._write

    def _write(self, data):
        raise NotImplementedError("the write() callable is not supported; return an iterable")

    def respond(self, env, body, keep: bool) -> bool:
        """Run the app on one request and send its answer; True to keep the connection."""
        worker = self.worker
        t0 = _perf()
        worker.nr += 1
        if worker.nr >= worker.max_requests and worker.alive:
            worker.log.info("Autorestarting worker after current request.")
            worker.alive = False
        self.status = None
        try:
            result = worker.wsgi(env, self.start_response)
        except Exception:  # noqa: BLE001 - the app (falcon) answers its own errors; this is a bug
            worker.log.exception("Error handling request %s", env.get("PATH_INFO"))
            self.refuse(_Reject("500 Internal Server Error", OceanError("internal server error")))
            return False
        sent = 0
        self.started = False
        try:
            status = self.status
            method = env["REQUEST_METHOD"]
            keep = keep and worker.alive and worker.keepalive and body.done
            bodyless = method == "HEAD" or status[:3] in _NO_BODY_STATUS or status[0] == "1"
            lines = [f"{k}: {v}" for k, v in self.resp_headers]
            text = "\r\n".join(lines)
            n = len(lines)
            if n and (text.count("\n") >= n or text.count("\r") >= n):
                raise ValueError("a response header holds a line break")
            has_length = "ontent-length:" in text.lower() if n else False
            whole = type(result) is list or type(result) is tuple
            if whole:
                data = b"".join(result) if len(result) != 1 else result[0]
                if not has_length and not bodyless:
                    text += f"\r\ncontent-length: {len(data)}" if n else f"content-length: {len(data)}"
                    n = 1
                chunked = False
            else:
                chunked = not has_length and not bodyless and env["SERVER_PROTOCOL"] == "HTTP/1.1"
                if not has_length and not bodyless and not chunked:
                    keep = False  # an HTTP/1.0 stream of unknown length ends with the connection
            head = (_PROTO.get(env["SERVER_PROTOCOL"][5:], "HTTP/1.1 ") + status + "\r\n" + _Date.get()
                    + ("Connection: keep-alive\r\n" if keep else "Connection: close\r\n")
                    + ("Transfer-Encoding: chunked\r\n" if chunked else "")
                    + text + ("\r\n\r\n" if n else "\r\n")).encode("latin-1")
            if whole:
                self.started = True
                if bodyless:
                    self.sendall(head)
                else:
                    self.sendall(head + data)
                    sent = len(data)
            else:
                sent = self._stream(head, result, chunked, bodyless)
        except OSError:
            keep = False
        except Exception:  # noqa: BLE001 - a response the app built wrong
            worker.log.exception("Error sending the response to %s", env.get("PATH_INFO"))
            if not self.started:
                self.refuse(_Reject("500 Internal Server Error", OceanError("internal server error")))
            keep = False
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # noqa: BLE001
                    worker.log.exception("Error closing the response of %s", env.get("PATH_INFO"))
        if worker.access_log is not None:
            worker.access(env["REMOTE_ADDR"], env["REQUEST_METHOD"], env["PATH_INFO"],
                          (self.status or "500")[:3], sent, (_perf() - t0) * 1000.0)
        if not keep and not body.done:
            self.linger()
        return keep

    def _stream(self, head: bytes, result, chunked: bool, bodyless: bool) -> int:
        """Send a streamed answer: the head with the first chunk, then each chunk as it comes."""
        sendall = self.sendall
        if bodyless:  # HEAD (or 204/304): never iterate, a stream would never end
            self.started = True
            sendall(head)
            return 0
        sent = 0
        pending_head = head
        for chunk in result:
            if not chunk:
                continue
            n = len(chunk)
            if chunked:
                chunk = b"%x\r\n%b\r\n" % (n, chunk)
            if pending_head is not None:
                chunk = pending_head + chunk
                pending_head = None
                self.started = True
            sendall(chunk)
            sent += n
        tail = b"0\r\n\r\n" if chunked else b""
        if pending_head is not None:
            tail = pending_head + tail
            self.started = True
        if tail:
            sendall(tail)
        return sent

    def linger(self) -> None:
        """Closing with body bytes unread: stop writing, read a little, so the answer is not reset."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
            with gevent.Timeout(1.0, False):
                for _ in range(64):
                    if not self.recv(RECV):
                        break
        except OSError:
            pass

    def expire(self) -> None:
        """The sweeper's cut: wake the blocked recv with an end of stream."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class OceanWorker(GeventWorker):
    """gunicorn's gevent worker with ocean's HTTP/1.1 connection handler (see the module doc)."""

    def run(self):
        self.setup_http()
        sweeper = gevent.spawn(self._sweep)
        try:
            super().run()
        finally:
            sweeper.kill(block=False)

    def setup_http(self) -> None:
        """Read the worker's settings once (limits, scheme headers) and make its caches."""
        cfg = self.cfg
        env = base_environ(cfg)
        env["wsgi.multithread"] = True
        env["wsgi.url_scheme"] = "https" if cfg.is_ssl else "http"
        env["SCRIPT_NAME"] = ""
        self.base_env = env
        self.keepalive = cfg.keepalive
        self.limit_line = cfg.limit_request_line if cfg.limit_request_line > 0 else 8190
        self.limit_fields = cfg.limit_request_fields if 0 < cfg.limit_request_fields <= 32768 else 32768
        self.limit_field_size = cfg.limit_request_field_size if cfg.limit_request_field_size > 0 else 8190
        self.limit_head = self.limit_line + self.limit_fields * (self.limit_field_size + 2) + 4
        self.secure_keys = frozenset("HTTP_" + k.upper().replace("-", "_") for k in cfg.secure_scheme_headers)
        self.secure_headers = tuple(("HTTP_" + k.upper().replace("-", "_"), v)
                                    for k, v in cfg.secure_scheme_headers.items())
        self.header_keys = {}
        self.header_map = cfg.header_map
        self.forwarder_headers = frozenset(h.upper() for h in cfg.forwarder_headers)
        self._methods = {}
        self._trust = {}
        self._servers = {}
        self.access_log = self.log.access_log if cfg.accesslog else None
        self.connections = set()

    def handle(self, listener, client, addr):
        """Serve one connection (ocean's ``post_fork`` wraps this to set TCP_NODELAY first)."""
        client.setblocking(1)
        conn = Connection(self, listener, client, addr)
        self.connections.add(conn)
        try:
            conn.serve()
        except Exception:  # noqa: BLE001 - never let a connection take the worker down
            self.log.exception("Error serving a connection")
        finally:
            self.connections.discard(conn)
            try:
                client.close()
            except OSError:
                pass

    def _sweep(self) -> None:
        """The one timer of the worker: cut connections idle (or slow to send a head) too long."""
        period = min(1.0, max(0.1, self.keepalive / 4))
        while True:
            gevent.sleep(period)
            cutoff = _monotonic() - self.keepalive
            stopping = not self.alive
            for conn in list(self.connections):
                since = conn.wait_since
                if since is not None and (since < cutoff or stopping):
                    conn.wait_since = None
                    conn.expire()

    # -- per-worker caches ---------------------------------------------------------------------

    def header_key(self, name: bytes, trusted: bool) -> str:
        """The environ key of a header name (``X-Ocean-Key`` -> ``HTTP_X_OCEAN_KEY``), cached."""
        text = name.decode("latin-1").upper()
        key = "HTTP_" + text.replace("-", "_")
        key = _SPECIAL.get(key, key)
        if "_" in text:
            # NOTE: X_A and X-A would map to one environ name: gunicorn's header_map decides (default
            # drop), and a trusted proxy's forwarder_headers pass; never cached (trust is per peer).
            if trusted and (text in self.forwarder_headers or "*" in self.forwarder_headers):
                return key
            if self.header_map == "dangerous":
                return key
            if self.header_map == "drop":
                return None
            raise _bad(f"header name {text!r} holds '_', which is refused (ambiguous once mapped)")
        if len(self.header_keys) > 4096:
            self.header_keys.clear()
        self.header_keys[name] = key
        return key

    def method(self, raw: bytes) -> str:
        m = self._methods.get(raw)
        if m is None:
            m = self._methods[raw] = raw.decode("ascii")
        return m

    def trusted(self, ip: str) -> bool:
        """Whether a peer may set the scheme headers (``forwarded_allow_ips``), cached per address."""
        t = self._trust.get(ip)
        if t is None:
            cfg = self.cfg
            t = _ip_in_allow_list(ip, cfg.forwarded_allow_ips, cfg.forwarded_allow_networks())
            if len(self._trust) > 4096:
                self._trust.clear()
            self._trust[ip] = t
        return t

    def server_name(self, listener) -> tuple:
        s = self._servers.get(listener)
        if s is None:
            name = listener.getsockname()
            s = self._servers[listener] = ((name[0], str(name[1])) if isinstance(name, tuple)
                                           else (str(name), ""))
        return s

    def access(self, addr, method, path, status, sent, ms) -> None:
        """One access-log line, gunicorn's logger, ocean's format: never a query, never a header."""
        if self.access_log is not None:
            self.access_log.info('%s "%s %s" %s %s %.1fms', addr, method, path, status, sent or "-", ms)
