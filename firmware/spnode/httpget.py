"""A small asyncio HTTP/1.1 GET that streams the body into a callback (firmware downloads).

Runs on MicroPython and CPython. No redirects, no chunked encoding (a firmware server sends a
Content-Length), resumes with ``Range`` from ``offset`` so a dropped connection costs only the
rest. Every read has a timeout; nothing here blocks the control loop::

    got = await get("http://10.0.0.2:8080/fw/0.2.0.spa", sink, offset=0, limit=size)

An https URL needs ``ssl``, the node's context that trusts only node.json's CA
(spnode.tlsctx), and the server's certificate must name the URL's host; a certificate that does
not verify raises ValueError before the request is sent.
"""

import asyncio


class HttpError(OSError):
    pass


def split_url(url):
    """(tls, host, port, path) of an http:// or https:// URL."""
    if url.startswith("https://"):
        tls, rest, port = True, url[8:], 443
    elif url.startswith("http://"):
        tls, rest, port = False, url[7:], 80
    else:
        raise HttpError("unsupported URL scheme")
    i = rest.find("/")
    host, path = (rest, "/") if i < 0 else (rest[:i], rest[i:])
    if ":" in host:
        host, p = host.rsplit(":", 1)
        port = int(p)
    return tls, host, port, path


async def get(url, sink, offset=0, limit=None, chunk=1024, timeout_s=10, ssl=None):
    """GET ``url`` from byte ``offset``; call ``sink(bytes)`` per chunk; return bytes received.
    Stops after ``limit`` bytes (the size the signed manifest allows); raises HttpError."""
    tls, host, port, path = split_url(url)
    if tls:
        if ssl is None or ssl is True:
            raise HttpError("https needs the CA from node.json to verify the server")
        conn = asyncio.open_connection(host, port, ssl=ssl, server_hostname=host)
    else:
        conn = asyncio.open_connection(host, port)
    reader, writer = await asyncio.wait_for(conn, timeout_s)
    try:
        req = "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n" % (path, host)
        if offset:
            req += "Range: bytes=%d-\r\n" % offset
        writer.write((req + "\r\n").encode())
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), timeout_s)
        parts = status.split(None, 2)
        code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if code not in (200, 206) or (offset and code != 206):
            raise HttpError("HTTP status %d" % code)
        length = None
        while True:
            line = await asyncio.wait_for(reader.readline(), timeout_s)
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if limit is not None:
            left = limit - offset
            if length is not None and length > left:
                raise HttpError("server offers %d bytes, more than the %d signed" % (length, left))
            length = left if length is None else length
        got = 0
        while length is None or got < length:
            want = chunk if length is None else min(chunk, length - got)
            data = await asyncio.wait_for(reader.read(want), timeout_s)
            if not data:
                break
            got += len(data)
            sink(data)
        return got
    finally:
        try:
            writer.close()
            await writer.wait_closed()
        except Exception:
            pass
