#!/bin/sh
# One-shot (compose service logging-setup): the retention policies in OpenSearch and the saved
# searches in OpenSearch Dashboards. Safe to run again: both are overwritten in place.
set -eu
OPENSEARCH="${OPENSEARCH_URL:-http://opensearch:9200}"
DASHBOARDS="${OPENSEARCH_DASHBOARDS_URL:-http://opensearch-dashboards:5601}"

until curl -fsS "$DASHBOARDS/api/status" >/dev/null; do sleep 5; done

for name in application-logs security-logs; do
    curl -fsS -X DELETE "$OPENSEARCH/_plugins/_ism/policies/iit-$name" >/dev/null 2>&1 || true
    curl -fsS -X PUT "$OPENSEARCH/_plugins/_ism/policies/iit-$name" \
        -H 'Content-Type: application/json' --data-binary "@/setup/ism-$name.json"
    echo
done

curl -fsS -X POST "$DASHBOARDS/api/saved_objects/_import?overwrite=true" \
    -H 'osd-xsrf: true' --form file=@/setup/saved-searches.ndjson
echo
