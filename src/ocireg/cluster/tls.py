"""TLS for requests between members (the proxy's hops, the peers' probes and questions,
`ocireg cluster status`)."""

from __future__ import annotations

import ssl

from ocireg.config import Config


def client_ssl_context(config: Config) -> ssl.SSLContext | None:
    """TLS for member-to-member requests: on when members serve HTTPS (`http.tls`)."""
    if config.http.tls is None:
        return None
    tls = config.cluster.tls if config.cluster else None
    ctx = ssl.create_default_context(cafile=str(tls.cacert) if tls and tls.cacert else None)
    if tls is not None and tls.cert is not None and tls.key is not None:
        ctx.load_cert_chain(str(tls.cert), str(tls.key))
    return ctx
