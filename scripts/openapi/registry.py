"""The registry API document (Sources/TapperRegistry/Server/RegistryOpenAPI.swift), built from
readable pieces: the field rules are long regular expressions. __X__ are placeholders the server fills in."""
import json
NOCTL = r"\u0000-\u001F\u007F-\u009F"
X = "[0-9A-Fa-f]"
T = "%[89ABab]" + X
# one percent-escape sequence that decodes to a UTF-8 character
ESC = "(%[0-7]" + X + "|%[Cc][2-9A-Fa-f]" + T + "|%[Dd]" + X + T + \
      "|%[Ee]0%[ABab]" + X + T + "|%[Ee][1-9A-Ca-c]" + T + T + "|%[Ee][Dd]%[89]" + X + T + "|%[Ee][EFef]" + T + T + \
      "|%[Ff]0%[9ABab]" + X + T + T + "|%[Ff][1-3]" + T + T + T + "|%[Ff]4%8" + X + T + T + ")"
C_NODOT = "[^" + NOCTL + r" ?#\\/{}%.]"
C_ANY = "[^" + NOCTL + r" ?#\\/{}%]"
A = "(" + C_NODOT + "|" + ESC + ")"
S = "(" + C_ANY + "|" + ESC + ")"
LITERAL = "(" + A + S + "*|\\." + A + S + "*|\\.\\." + S + "+)"
PARAM_NAME = "[A-Za-z_][A-Za-z0-9_]*"
PARAM = "\\{" + PARAM_NAME + "(:(str|int|float|uuid))?\\}"
LAST_PARAM = "\\{" + PARAM_NAME + "(:(str|int|float|uuid|path))?\\}"
SEG = "(" + LITERAL + "|" + PARAM + ")"
PATH_PARAM = "\\{" + PARAM_NAME + ":path\\}"
# Parameter names must be distinct: a negative lookahead with a back-reference (ECMA-262 and
# Python's re both have them).
DISTINCT = "(?!.*\\{([A-Za-z_][A-Za-z0-9_]*)(:[a-z]+)?\\}.*\\{\\1(:[a-z]+)?\\})"
TEMPLATE = "^" + DISTINCT + "(/" + SEG + ")*(/|/" + PATH_PARAM + "|/" + SEG + ")$"
PREFIX = "^(/" + LITERAL + ")+$"
PORT = "0*([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
URL = "^[Hh][Tt][Tt][Pp]([Ss])?://([A-Za-z0-9._-]+|\\[[0-9A-Fa-f:.]+\\])(:" + PORT + ")?/?$"
TEXT = "^[^" + NOCTL + "]*$"
TOKEN = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
RATE_LIMIT = "^[1-9][0-9]{0,8}/([sSmMhH]|[sS][eE][cC]|[sS][eE][cC][oO][nN][dD]|[mM][iI][nN]|[mM][iI][nN][uU][tT][eE]|[hH][oO][uU][rR])$"
DURATION = r"^[0-9]+(\.[0-9]+)?(ms|s|m|h)?$"

E = {"$ref": "#/components/responses/Error"}
idx_header = {"X-Tapper-Index": {"description": "the catalog's change index", "required": True, "schema": {"type": "integer", "minimum": 0}}}
def j(schema): return {"application/json": {"schema": schema}}

doc = {
 "openapi": "3.1.0",
 "info": {"title": "Tapper registry API", "version": "1.0.0",
   "description": "Services register, heartbeat and deregister; gateways read the catalog with blocking queries. "
     "Every error is {\"error\": {\"code\", \"message\", \"field\"}}. __AUTH_NOTE__"},
 "paths": {
  "/v1/services/{service}/instances/{instance_id}": {
   "parameters": [{"$ref": "#/components/parameters/service"}, {"$ref": "#/components/parameters/instance_id"}],
   "put": {"summary": "Register or update an instance (idempotent)", "operationId": "registerInstance",
     "security": "__WRITE_SECURITY__",
     "requestBody": {"required": True, "content": j({"$ref": "#/components/schemas/Registration"})},
     "responses": {"201": {"description": "created", "headers": idx_header, "content": j({"$ref": "#/components/schemas/Instance"})},
                   "200": {"description": "updated", "headers": idx_header, "content": j({"$ref": "#/components/schemas/Instance"})},
                   "400": E, "401": E, "403": E, "409": {"description": "a route another service (or an earlier route of this registration) already claims; the message names the owner", "content": j({"$ref": "#/components/schemas/Error"})},
                   "413": E, "503": E},
     "links": {"heartbeat": {"operationId": "heartbeat", "parameters": {"service": "$request.path.service", "instance_id": "$request.path.instance_id"}},
               "deregister": {"operationId": "deregisterInstance", "parameters": {"service": "$request.path.service", "instance_id": "$request.path.instance_id"}},
               "getService": {"operationId": "getService", "parameters": {"service": "$request.path.service"}},
               "catalog": {"operationId": "catalog", "parameters": {"index": "$response.body#/index"}}}},
   "delete": {"summary": "Deregister an instance", "operationId": "deregisterInstance", "security": "__WRITE_SECURITY__",
     "responses": {"204": {"description": "removed"}, "400": E, "401": E, "403": E, "404": E, "503": E}}
  },
  "/v1/services/{service}/instances/{instance_id}/heartbeat": {
   "parameters": [{"$ref": "#/components/parameters/service"}, {"$ref": "#/components/parameters/instance_id"}],
   "put": {"summary": "Refresh an instance's TTL; 404 means register again", "operationId": "heartbeat", "security": "__WRITE_SECURITY__",
     "responses": {"200": {"description": "refreshed", "content": j({"type": "object", "required": ["status"], "additionalProperties": False, "properties": {"status": {"const": "ok"}}})},
                   "400": E, "401": E, "403": E, "404": E, "503": E}}
  },
  "/v1/services": {
   "get": {"summary": "List services", "operationId": "listServices", "security": "__READ_SECURITY__",
     "responses": {"200": {"description": "services", "headers": idx_header, "content": j({"$ref": "#/components/schemas/ServiceList"})}, "401": E, "503": E}}
  },
  "/v1/services/{service}": {
   "parameters": [{"$ref": "#/components/parameters/service"}],
   "get": {"summary": "One service and its instances", "operationId": "getService", "security": "__READ_SECURITY__",
     "responses": {"200": {"description": "the service", "headers": idx_header, "content": j({"$ref": "#/components/schemas/ServiceDetail"})},
                   "400": E, "401": E, "404": E, "503": E}}
  },
  "/v1/catalog": {
   "get": {"summary": "The whole catalog; with index, a Consul-style blocking query",
     "description": "Without index it answers at once. Otherwise it answers as soon as the catalog's index is greater than index "
       "(index=0 on a registry that never changed waits too), "
       "or when wait ends: wait defaults to __DEFAULT_WAIT__ and is cut to __MAX_WAIT__ (this server's bounds); up to a sixteenth of it "
       "is added at random (jitter, as Consul does) so that watchers that started together spread out.",
     "operationId": "catalog", "security": "__READ_SECURITY__",
     "parameters": [{"name": "index", "in": "query", "description": "wait until the catalog's index is greater than this",
                     "schema": {"type": "integer", "minimum": 0, "maximum": 18446744073709551615}},
                    {"name": "wait", "in": "query", "description": "longest wait: 500ms, 30s, 5m, 1h or bare seconds; default __DEFAULT_WAIT__, at most __MAX_WAIT__ (longer is cut), plus up to 1/16 jitter",
                     "schema": {"type": "string", "pattern": DURATION, "examples": ["30s", "500ms", "5m"]}}],
     "responses": {"200": {"description": "the catalog", "headers": idx_header, "content": j({"$ref": "#/components/schemas/Catalog"})},
                   "400": E, "401": E, "503": E}}
  },
  "/v1/health": {
   "get": {"summary": "The registry's health and its backend's (never needs a token)", "operationId": "health", "security": [],
     "responses": {"200": {"description": "healthy", "content": j({"$ref": "#/components/schemas/Health"})},
                   "503": {"description": "backend unavailable", "content": j({"$ref": "#/components/schemas/Health"})}}}
  },
  "/v1/openapi.json": {
   "get": {"summary": "This document", "operationId": "openapi", "security": "__READ_SECURITY__",
     "responses": {"200": {"description": "OpenAPI 3.1", "content": j({"type": "object", "required": ["openapi", "paths"]})}, "401": E}}
  }
 },
 "components": {
  "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
  "parameters": {
   "service": {"name": "service", "in": "path", "required": True, "description": "a DNS label",
               "schema": {"type": "string", "pattern": "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"}},
   "instance_id": {"name": "instance_id", "in": "path", "required": True, "description": "letters, digits, '.', '_', ':' and '-'; may be percent-encoded (':' as %3A)",
                   "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"}}
  },
  "responses": {"Error": {"description": "an error", "content": j({"$ref": "#/components/schemas/Error"})}},
  "schemas": {
   "Error": {"type": "object", "required": ["error"], "additionalProperties": False, "properties": {"error": {"type": "object", "required": ["code", "message"], "additionalProperties": False,
             "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}}}}},
   "Route": {"type": "object", "required": ["path"], "additionalProperties": False, "properties": {
     "methods": {"type": "array", "maxItems": 64, "description": "HTTP methods (any case; stored upper-case); empty = any method",
                 "items": {"type": "string", "maxLength": 32, "pattern": TOKEN}},
     "path": {"type": "string", "maxLength": 1536, "pattern": TEMPLATE,
              "description": "FastAPI/Starlette template relative to prefix, e.g. /users/{user_id:int}; convertors str, int, float, uuid and path (last segment only); "
                "each parameter a whole segment with a distinct name; no '.' or '..' segments, no empty segment but a trailing '/'. "
                "Two routes of one registration with the same shape and methods are a conflict (409)."},
     "public": {"type": "boolean"},
     "websocket": {"type": "boolean", "description": "the route is a WebSocket endpoint (the gateway tunnels any upgrade; this tells route test and status)"},
     "rate_limit": {"type": "string", "pattern": RATE_LIMIT, "description": "this route's own rate limit per client key, e.g. 10/s (N/s, N/m or N/h)"}}},
   "Registration": {"type": "object", "required": ["url"], "additionalProperties": False,
     "description": "/health and /_tapper/... belong to the gateway: a registration with routes may not have a prefix under /_tapper, "
       "and without a prefix no route may be /health or under /_tapper (percent-encoded spellings of these are refused too).",
     "anyOf": [
       {"properties": {"routes": {"maxItems": 0}}},
       {"required": ["prefix"], "properties": {"prefix": {"minLength": 1, "not": {"pattern": "^/_tapper(/|$)"}}}},
       {"properties": {"prefix": {"maxLength": 0}, "routes": {"items": {"properties": {"path": {"not": {"pattern": "^/(health$|_tapper(/|$))"}}}}}}}],
     "properties": {
     "url": {"type": "string", "pattern": URL, "description": "http(s)://host[:port] (an origin: no path, query, credentials or spaces)"},
     "version": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": TEXT, "default": "0.0.0"},
     "description": {"type": "string", "maxLength": 1024, "pattern": TEXT},
     "prefix": {"type": "string", "maxLength": 512, "anyOf": [{"const": ""}, {"pattern": PREFIX}], "default": "",
                "description": "path prefix of every route, e.g. /api: literal segments only, no trailing '/'"},
     "health_endpoint": {"type": "string", "maxLength": 512, "pattern": "^/[^" + NOCTL + " ]*$", "default": "/health"},
     "tags": {"type": "array", "maxItems": 64, "items": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": TEXT}},
     "routes": {"type": "array", "maxItems": 2000, "items": {"$ref": "#/components/schemas/Route"}},
     "ttl_seconds": {"type": "number", "minimum": 1, "maximum": 86400, "default": 30},
     "weight": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 1},
     "metadata": {"type": "object", "maxProperties": 64, "propertyNames": {"maxLength": 128, "pattern": TEXT},
                  "additionalProperties": {"type": "string", "maxLength": 1024, "pattern": TEXT}},
     "load_balancer": {"type": "string", "maxLength": 64, "pattern": TOKEN, "description": "round-robin, random, least-connections or weighted"},
     "traffic_weight": {"type": "number", "minimum": 0, "maximum": 100,
                        "description": "percentage of the service's requests for this instance's version (canary); versions without one share the rest by instance count"},
     "rate_limit": {"type": "string", "pattern": RATE_LIMIT,
                    "description": "the service's rate limit per client key over all its routes, e.g. 100/s (N/s, N/m or N/h); the strictest of its instances' wins"},
     "openapi_path": {"type": "string", "maxLength": 512, "pattern": "^/([^" + NOCTL + " #/][^" + NOCTL + " #]*)?$",
                      "description": "where the instance serves its OpenAPI document, relative to url (FastAPI: /openapi.json); the gateway merges it into its /openapi.json"},
     "protocol": {"type": "string", "enum": ["http1", "h2c"],
                  "description": "how the gateway speaks to the instance: http1 (HTTP/1.1 keep-alive) or h2c (HTTP/2 with prior knowledge, multiplexed; gRPC servers); absent: the gateway's --upstream-protocol"}}},
   "Instance": {"type": "object", "required": ["service", "instance_id", "index", "create_index", "url", "version", "routes"], "properties": {
     "service": {"type": "string"}, "instance_id": {"type": "string"},
     "index": {"type": "integer"}, "create_index": {"type": "integer"},
     "last_heartbeat_age_seconds": {"type": "number"}, "expires_in_seconds": {"type": "number"},
     "url": {"type": "string"}, "version": {"type": "string"}, "description": {"type": "string"}, "prefix": {"type": "string"},
     "health_endpoint": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}},
     "routes": {"type": "array", "items": {"type": "object", "required": ["methods", "path"], "properties": {
        "methods": {"type": "array", "items": {"type": "string"}}, "path": {"type": "string"}, "public": {"type": "boolean"}, "websocket": {"type": "boolean"},
        "rate_limit": {"type": "string"}}}},
     "ttl_seconds": {"type": "number"}, "weight": {"type": "integer"},
     "metadata": {"type": "object", "additionalProperties": {"type": "string"}}, "load_balancer": {"type": "string"}, "traffic_weight": {"type": "number"},
     "rate_limit": {"type": "string"}, "openapi_path": {"type": "string"}, "protocol": {"type": "string", "enum": ["http1", "h2c"]}}},
   "Catalog": {"type": "object", "required": ["index", "services"], "properties": {
     "index": {"type": "integer"}, "stale": {"type": "boolean"},
     "services": {"type": "array", "items": {"type": "object", "required": ["name", "instances"], "properties": {
       "name": {"type": "string"}, "instances": {"type": "array", "items": {"$ref": "#/components/schemas/Instance"}}}}}}},
   "ServiceList": {"type": "object", "required": ["index", "services"], "properties": {"index": {"type": "integer"}, "services": {"type": "array", "items": {"type": "object",
     "required": ["name", "versions", "instance_count", "route_count"], "properties": {
     "name": {"type": "string"}, "versions": {"type": "array", "items": {"type": "string"}},
     "instance_count": {"type": "integer"}, "route_count": {"type": "integer"}}}}}},
   "ServiceDetail": {"type": "object", "required": ["index", "name", "instances"], "properties": {"index": {"type": "integer"}, "name": {"type": "string"},
     "instances": {"type": "array", "items": {"$ref": "#/components/schemas/Instance"}}}},
   "Health": {"type": "object", "required": ["status", "backend"], "properties": {
     "status": {"enum": ["ok", "degraded"]}, "index": {"type": "integer"}, "instances": {"type": "integer"},
     "backend": {"type": "object", "required": ["name", "status"], "properties": {"name": {"type": "string"}, "status": {"enum": ["ok", "stale", "unavailable"]}, "error": {"type": "string"}}}}}
  }
 }
}


def document():
    """The document as pretty-printed JSON with the server's placeholders."""
    text = json.dumps(doc, indent=1, ensure_ascii=True)
    for k in ["__WRITE_SECURITY__", "__READ_SECURITY__"]:
        text = text.replace('"%s"' % k, k)
    return text
