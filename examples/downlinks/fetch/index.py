"""A downlink: make the HTTP request described by the event, with the time window in its query string.

The event is the rule's payload (``url``, optional ``method``, ``headers``,
``body``) plus the keys the rule's time_filter adds (here ``from`` and ``to``).
Every key that is not part of the request description goes into the query
string. The answer is published to the rule's topic: status, the URL asked and
the body (parsed when it is JSON).
"""

import json
import urllib.parse
import urllib.request

REQUEST_KEYS = {"url", "method", "headers", "body", "timeout"}


def handler(event, context):
    params = {key: value for key, value in event.items() if key not in REQUEST_KEYS}
    url = event["url"]
    if params:
        url += ("&" if urllib.parse.urlsplit(url).query else "?") + urllib.parse.urlencode(params)
    body = event.get("body")
    request = urllib.request.Request(
        url,
        method=event.get("method", "GET"),
        headers=event.get("headers", {}),
        data=body.encode() if isinstance(body, str) else None,
    )
    # An HTTP error status raises urllib.error.HTTPError: the call fails and its
    # error envelope goes to the rule's error topic.
    with urllib.request.urlopen(request, timeout=event.get("timeout", 10)) as response:
        raw = response.read()
        status = response.status
        kind = response.headers.get_content_type()
    return {
        "status": status,
        "url": url,
        "scheduledTime": context.get("scheduledTime"),
        "body": json.loads(raw) if kind == "application/json" else raw.decode(errors="replace"),
    }
