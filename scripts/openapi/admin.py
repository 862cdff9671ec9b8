"""The gateway admin API document (Sources/TapperGateway/Admin/AdminOpenAPI.swift)."""
import json
E = {"$ref": "#/components/responses/Error"}
def j(schema): return {"application/json": {"schema": schema}}
num = {"type": "number"}
doc = {
 "openapi": "3.1.0",
 "info": {"title": "Tapper gateway admin API", "version": "1.0.0",
   "description": "The gateway's own endpoints: /health (always open, on the main and the admin listener) and /_tapper/* "
     "(on the admin listener when --admin-port is set, else on the main one). __AUTH_NOTE__ "
     "Every error is {\"error\": {\"code\", \"message\"}}; these endpoints answer GET and HEAD only (405 with Allow otherwise)."},
 "paths": {
  "/health": {"get": {"summary": "The gateway's health: healthy when every service has a routable instance, degraded otherwise (200 either way)",
     "operationId": "health", "security": [],
     "responses": {"200": {"description": "the gateway is serving", "content": j({"$ref": "#/components/schemas/Health"})}}}},
  "/_tapper/routes": {"get": {"summary": "The route table the gateway serves", "operationId": "routes", "security": "__ADMIN_SECURITY__",
     "responses": {"200": {"description": "the route table", "content": j({"$ref": "#/components/schemas/Routes"})}, "401": E}}},
  "/_tapper/status": {"get": {"summary": "Services, instances and their health as this gateway sees them", "operationId": "status", "security": "__ADMIN_SECURITY__",
     "responses": {"200": {"description": "the gateway's view", "content": j({"$ref": "#/components/schemas/Status"})}, "401": E}}},
  "/_tapper/metrics": {"get": {"summary": "Prometheus text exposition", "operationId": "metrics", "security": "__ADMIN_SECURITY__",
     "responses": {"200": {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}, "401": E}}},
  "/_tapper/traffic": {"get": {"summary": "Per route: requests and 5xx since start, rate and latency over the last seconds; the last 5xx answers", "operationId": "traffic",
     "security": "__ADMIN_SECURITY__",
     "responses": {"200": {"description": "traffic", "content": j({"$ref": "#/components/schemas/Traffic"})}, "401": E}}},
  "/_tapper/explain": {"get": {"summary": "Which service, route and instances a request would reach, and why (the answer of tapper route test --json)", "operationId": "explain",
     "security": "__ADMIN_SECURITY__",
     "parameters": [
       {"name": "method", "in": "query", "required": True, "schema": {"type": "string", "pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}$"},
        "description": "an HTTP method, e.g. GET (an RFC 9110 token, any case)"},
       {"name": "path", "in": "query", "required": True, "schema": {"type": "string", "pattern": "^/", "maxLength": 8192},
        "description": "a request path starting with '/', optionally with a query"}],
     "responses": {"200": {"description": "the routing decision", "content": j({"$ref": "#/components/schemas/RouteReport"})}, "400": E, "401": E,
       "414": {"description": "the request target (with the percent-encoded path) is longer than the gateway's 8 KiB limit", "content": j({"$ref": "#/components/schemas/Error"})}}}},
  "/_tapper/dashboard": {"get": {"summary": "The live dashboard: one self-contained HTML page polling status, traffic and routes", "operationId": "dashboard",
     "security": "__ADMIN_SECURITY__",
     "responses": {"200": {"description": "the page", "content": {"text/html": {"schema": {"type": "string"}}}}, "401": E}}},
  "/_tapper/openapi.json": {"get": {"summary": "This document", "operationId": "openapi", "security": "__ADMIN_SECURITY__",
     "responses": {"200": {"description": "OpenAPI 3.1", "content": j({"type": "object", "required": ["openapi", "paths"]})}, "401": E}}},
 },
 "components": {
  "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
  "responses": {"Error": {"description": "an error", "content": j({"$ref": "#/components/schemas/Error"})}},
  "schemas": {
   "Error": {"type": "object", "required": ["error"], "additionalProperties": False, "properties": {"error": {"type": "object", "required": ["code", "message"], "additionalProperties": False,
             "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}}}}},
   "Health": {"type": "object", "required": ["status", "services", "registry"], "additionalProperties": False, "properties": {
     "status": {"enum": ["healthy", "degraded"]}, "registry": {"enum": ["reachable", "unreachable"]},
     "services": {"type": "object", "additionalProperties": {"type": "object", "required": ["status", "instances", "healthy"], "additionalProperties": False, "properties": {
        "status": {"enum": ["healthy", "unhealthy"]}, "instances": {"type": "integer", "minimum": 0}, "healthy": {"type": "integer", "minimum": 0}}}}}},
   "Routes": {"type": "object", "required": ["index", "routes", "conflicts"], "additionalProperties": False, "properties": {
     "index": {"type": "integer", "minimum": 0},
     "routes": {"type": "array", "items": {"type": "object", "required": ["method", "template", "service", "instances", "public"], "additionalProperties": False, "properties": {
        "method": {"type": "string", "description": "a method, or * for any"}, "template": {"type": "string"}, "service": {"type": "string"},
        "instances": {"type": "array", "items": {"type": "string"}}, "public": {"type": "boolean"}}}},
     "conflicts": {"type": "array", "items": {"type": "string"}}}},
   "Traffic": {"type": "object", "required": ["window_seconds", "routes", "recent_errors"], "additionalProperties": False, "properties": {
     "window_seconds": num,
     "routes": {"type": "array", "items": {"type": "object", "required": ["service", "method", "route", "requests_total", "errors_total", "requests_per_second", "errors_per_second"],
       "additionalProperties": False, "properties": {
       "service": {"type": "string"}, "method": {"type": "string"}, "route": {"type": "string", "description": "the route template"},
       "requests_total": {"type": "integer", "minimum": 0}, "errors_total": {"type": "integer", "minimum": 0, "description": "5xx answers"},
       "requests_per_second": num, "errors_per_second": num, "mean_ms": num,
       "p50_ms": {"type": "number", "description": "upper bound (latency buckets double)"}, "p99_ms": num}}},
     "recent_errors": {"type": "array", "description": "the last 5xx answers, newest first (at most 50)", "items": {"type": "object",
       "required": ["age_seconds", "method", "path", "status", "service", "request_id"], "additionalProperties": False, "properties": {
       "age_seconds": num, "method": {"type": "string"}, "path": {"type": "string"}, "status": {"type": "integer", "minimum": 500, "maximum": 599},
       "service": {"type": "string", "description": "- when the gateway answered before picking a service"}, "instance": {"type": "string"}, "request_id": {"type": "string"}}}}}},
   "RouteReport": {"type": "object", "required": ["method", "path", "result", "parameters", "instances", "candidates", "allowed", "nearby"], "additionalProperties": False, "properties": {
     "method": {"type": "string"}, "path": {"type": "string"}, "result": {"enum": ["matched", "method_not_allowed", "not_found"]},
     "service": {"type": "string"}, "version": {"type": "string"}, "template": {"type": "string"}, "public": {"type": "boolean"}, "websocket": {"type": "boolean"},
     "parameters": {"type": "object", "additionalProperties": {"type": "string"}},
     "instances": {"type": "array", "items": {"type": "object", "required": ["id", "url", "state"], "additionalProperties": False, "properties": {
        "id": {"type": "string"}, "url": {"type": "string"}, "state": {"type": "string"}}}},
     "traffic": {"type": "array", "items": {"type": "object", "required": ["version", "percent", "instances", "weighted"], "additionalProperties": False, "properties": {
        "version": {"type": "string"}, "percent": {"type": "number"}, "instances": {"type": "integer"}, "weighted": {"type": "boolean"}}}},
     "candidates": {"type": "array", "items": {"type": "object", "required": ["service", "template", "method"], "additionalProperties": False, "properties": {
        "service": {"type": "string"}, "template": {"type": "string"}, "method": {"type": "string"}, "reason": {"type": "string"}}}},
     "allowed": {"type": "array", "items": {"type": "string"}}, "nearby": {"type": "array", "items": {"type": "string"}}}},
   "Status": {"type": "object", "required": ["view", "services"], "additionalProperties": False, "properties": {
     "view": {"const": "gateway"},
     "gateway": {"type": "object", "required": ["table_index", "table_age_seconds", "stale", "registry", "requests_in_flight", "open_connections", "uptime_seconds"],
       "additionalProperties": False, "properties": {
       "table_index": {"type": "integer", "minimum": 0}, "table_age_seconds": num, "stale": {"type": "boolean"},
       "registry": {"type": "object", "required": ["source", "reachable"], "additionalProperties": False, "properties": {
          "source": {"type": "string"}, "reachable": {"type": "boolean"}, "last_error": {"type": "string"}, "last_contact_age_seconds": num}},
       "requests_in_flight": {"type": "integer", "minimum": 0}, "open_connections": {"type": "integer", "minimum": 0}, "uptime_seconds": num,
       "rate_limit_store": {"type": "object", "required": ["store", "failure", "reachable", "syncs"], "additionalProperties": False,
          "description": "set when --rate-limit-store shares the limits with other gateways", "properties": {
          "store": {"type": "string"}, "failure": {"enum": ["open", "closed"]}, "reachable": {"type": "boolean"},
          "syncs": {"type": "integer", "minimum": 0}, "last_error": {"type": "string"}}},
       "tracing": {"type": "object", "description": "the span exporter, when --otlp-endpoint is set",
         "required": ["endpoint", "sample_rate", "exported", "dropped", "failed"], "additionalProperties": False, "properties": {
         "endpoint": {"type": "string"}, "sample_rate": {"type": "number", "minimum": 0, "maximum": 1},
         "exported": {"type": "integer", "minimum": 0}, "dropped": {"type": "integer", "minimum": 0}, "failed": {"type": "integer", "minimum": 0}}},
       "tls": {"type": "object", "description": "the HTTPS listener, when --tls-port is set",
         "required": ["port", "certificates", "reload_failures"], "additionalProperties": False, "properties": {
         "port": {"type": "integer", "minimum": 0, "maximum": 65535}, "reload_failures": {"type": "integer", "minimum": 0},
         "certificates": {"type": "array", "items": {"type": "object", "required": ["file", "names", "not_after", "expires_in_days"], "additionalProperties": False, "properties": {
           "file": {"type": "string"}, "names": {"type": "array", "items": {"type": "string"}}, "not_after": {"type": "string", "format": "date-time"},
           "expires_in_days": {"type": "number"}}}}}},
       "http2": {"type": "object", "description": "HTTP/2 towards clients and h2c instances: connections and sessions open now, the rest counted since the start",
         "required": ["enabled", "max_concurrent_streams", "connections", "streams", "client_resets", "rapid_reset_goaways", "upstream_sessions", "upstream_streams"],
         "additionalProperties": False, "properties": {
         "enabled": {"type": "boolean"}, "max_concurrent_streams": {"type": "integer", "minimum": 1},
         "connections": {"type": "integer", "minimum": 0}, "streams": {"type": "integer", "minimum": 0},
         "client_resets": {"type": "integer", "minimum": 0}, "rapid_reset_goaways": {"type": "integer", "minimum": 0},
         "upstream_sessions": {"type": "integer", "minimum": 0}, "upstream_streams": {"type": "integer", "minimum": 0}}}}},
     "services": {"type": "array", "items": {"type": "object", "required": ["name", "versions", "healthy", "total", "routes", "instances"], "additionalProperties": False, "properties": {
       "name": {"type": "string"}, "versions": {"type": "array", "items": {"type": "string"}},
       "healthy": {"type": "integer", "minimum": 0}, "total": {"type": "integer", "minimum": 0}, "routes": {"type": "integer", "minimum": 0},
       "instances": {"type": "array", "items": {"type": "object", "required": ["id", "url", "version", "state", "weight"], "additionalProperties": False, "properties": {
          "id": {"type": "string"}, "url": {"type": "string"}, "version": {"type": "string"}, "state": {"type": "string"}, "weight": {"type": "integer"},
          "last_heartbeat_age_seconds": num, "expires_in_seconds": num}}},
       "traffic": {"type": "array", "description": "how the routable instances' versions share the traffic when a traffic_weight splits it (absent: by instance count)",
         "items": {"type": "object", "required": ["version", "percent", "instances", "weighted"], "additionalProperties": False, "properties": {
           "version": {"type": "string"}, "percent": {"type": "number", "minimum": 0, "maximum": 100}, "instances": {"type": "integer", "minimum": 1},
           "weighted": {"type": "boolean", "description": "the share is the version's traffic_weight (not a share of the remainder)"}}}}}}}}}
  }
 }
}


def document():
    """The document as pretty-printed JSON with the server's placeholders."""
    text = json.dumps(doc, indent=1, ensure_ascii=True).replace('"__ADMIN_SECURITY__"', "__ADMIN_SECURITY__")
    return text
