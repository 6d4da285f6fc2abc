"""The headers every answer of the page carries: a strict Content-Security-Policy and the
browser's other safety switches.

Model output is shown by the page, so the page must not be able to run anything it did not ship:
no inline script, no ``eval``, no remote images (a remote image URL in a reply is how an
injected prompt leaks data), no frames around it, and forms that only post to this server.
Inline styles stay allowed: syntax highlighting and math set ``style`` attributes.
"""

from __future__ import annotations

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

# Built assets have their content's hash in their names: a new build makes new names, so a
# browser may keep each one for good.
IMMUTABLE = "public, max-age=31536000, immutable"
# The HTML names the current assets, so it is checked again on every visit.
REVALIDATE = "no-cache"
