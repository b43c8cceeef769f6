"""The node's TLS client context: trusts only the CA from node.json, and checks the server's name.

``asyncio.open_connection(..., ssl=True)`` trusts anyone on MicroPython (micropython-lib's
``ssl.SSLContext`` turns verification off), so a fake broker on the street's Wi-Fi got the
node's password. The context made here verifies the chain against the provisioned CA only (no
system store: the node has none, and the simulator must behave as the node) and the name given
as ``server_hostname`` when a connection is opened (mbedTLS on the node, OpenSSL on CPython).

A refused certificate is raised as ``ValueError`` by both interpreters (MicroPython's tls module
with mbedTLS's reason, CPython's ``ssl.SSLCertVerificationError``); spnode.mqtt_client logs it.
Loaded only while node.json is checked: the context it returns is all the node keeps.
"""

from spnode.compat import MICROPYTHON


def client_context(cadata):
    """An SSL context for connections to the broker and the firmware server: ``cadata`` is the
    PEM text of the CA certificate(s). Raises ValueError (the reason) if it holds none."""
    if not isinstance(cadata, str) or "-----BEGIN CERTIFICATE-----" not in cadata:
        raise ValueError("must be PEM text with a certificate")
    if len(cadata) > 8192:
        raise ValueError("longer than 8192 characters")
    if MICROPYTHON:
        import tls

        ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
        ctx.verify_mode = tls.CERT_REQUIRED
        ders = _ders(cadata)
        if not ders:
            raise ValueError("no certificate in the PEM text")
        for der in ders:  # each parsed certificate joins the context's chain of trusted CAs
            try:
                ctx.load_verify_locations(der)
            except (OSError, ValueError):  # mbedTLS: "invalid cert"
                raise ValueError("a CA certificate mbedTLS cannot read") from None
        return ctx
    import ssl

    try:
        return ssl.create_default_context(cadata=cadata)  # CERT_REQUIRED, checks the hostname
    except ssl.SSLError:
        raise ValueError("no CA certificate OpenSSL can read") from None


def _ders(pem):
    """The DER bytes of each certificate in PEM text: the unix port's mbedTLS is built without
    its PEM parser, and DER is what every build reads."""
    from binascii import a2b_base64

    out = []
    for part in pem.split("-----BEGIN CERTIFICATE-----")[1:]:
        body = part.split("-----END CERTIFICATE-----")[0]
        try:
            out.append(a2b_base64("".join(body.split())))
        except ValueError:
            raise ValueError("a certificate that is not base64") from None
    return out
