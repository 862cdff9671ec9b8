/// The registry API as OpenAPI 3.1, served at `GET /v1/openapi.json`. A test checks that every
/// path and method here is routed, and every routed endpoint is listed here.
enum RegistryOpenAPI {
    static let document = #"""
{
  "openapi": "3.1.0",
  "info": {"title": "Tapper registry API", "version": "1.0.0",
           "description": "Services register, heartbeat and deregister; gateways read the catalog with blocking queries. Writes need 'Authorization: Bearer TOKEN' when the registry has a token."},
  "paths": {
    "/v1/services/{service}/instances/{instance_id}": {
      "parameters": [{"$ref": "#/components/parameters/service"}, {"$ref": "#/components/parameters/instance_id"}],
      "put": {"summary": "Register or update an instance (idempotent)", "operationId": "registerInstance",
        "security": [{"bearer": []}, {}],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Registration"}}}},
        "responses": {"201": {"description": "created", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Instance"}}}},
                      "200": {"description": "updated", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Instance"}}}},
                      "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"},
                      "409": {"$ref": "#/components/responses/Error"}, "413": {"$ref": "#/components/responses/Error"},
                      "503": {"$ref": "#/components/responses/Error"}}},
      "delete": {"summary": "Deregister an instance", "operationId": "deregisterInstance", "security": [{"bearer": []}, {}],
        "responses": {"204": {"description": "removed"}, "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}
    },
    "/v1/services/{service}/instances/{instance_id}/heartbeat": {
      "parameters": [{"$ref": "#/components/parameters/service"}, {"$ref": "#/components/parameters/instance_id"}],
      "put": {"summary": "Refresh an instance's TTL; 404 means register again", "operationId": "heartbeat", "security": [{"bearer": []}, {}],
        "responses": {"200": {"description": "refreshed"}, "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}
    },
    "/v1/services": {
      "get": {"summary": "List services", "operationId": "listServices",
        "responses": {"200": {"description": "services", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ServiceList"}}}}}}
    },
    "/v1/services/{service}": {
      "parameters": [{"$ref": "#/components/parameters/service"}],
      "get": {"summary": "One service and its instances", "operationId": "getService",
        "responses": {"200": {"description": "the service", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ServiceDetail"}}}},
                      "404": {"$ref": "#/components/responses/Error"}}}
    },
    "/v1/catalog": {
      "get": {"summary": "The whole catalog; with index, a blocking query that returns when the index passes it or wait ends", "operationId": "catalog",
        "parameters": [{"name": "index", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                       {"name": "wait", "in": "query", "schema": {"type": "string", "examples": ["30s", "500ms", "5m"]}}],
        "responses": {"200": {"description": "the catalog", "headers": {"X-Tapper-Index": {"schema": {"type": "integer"}}},
                              "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Catalog"}}}},
                      "400": {"$ref": "#/components/responses/Error"}}}
    },
    "/v1/health": {
      "get": {"summary": "The registry's health and its backend's", "operationId": "health",
        "responses": {"200": {"description": "healthy"}, "503": {"description": "backend unavailable"}}}
    },
    "/v1/openapi.json": {
      "get": {"summary": "This document", "operationId": "openapi", "responses": {"200": {"description": "OpenAPI 3.1"}}}
    }
  },
  "components": {
    "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    "parameters": {
      "service": {"name": "service", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"}},
      "instance_id": {"name": "instance_id", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"}}
    },
    "responses": {
      "Error": {"description": "an error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    },
    "schemas": {
      "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}}}}},
      "Route": {"type": "object", "required": ["path"], "additionalProperties": false, "properties": {
        "methods": {"type": "array", "items": {"type": "string"}, "description": "empty = any method"},
        "path": {"type": "string", "description": "FastAPI/Starlette template, e.g. /users/{user_id:int}"},
        "public": {"type": "boolean"}}},
      "Registration": {"type": "object", "required": ["url"], "additionalProperties": false, "properties": {
        "url": {"type": "string", "description": "http(s)://host:port"},
        "version": {"type": "string", "default": "0.0.0"}, "description": {"type": "string"},
        "prefix": {"type": "string", "default": ""}, "health_endpoint": {"type": "string", "default": "/health"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "routes": {"type": "array", "items": {"$ref": "#/components/schemas/Route"}},
        "ttl_seconds": {"type": "number", "minimum": 1, "maximum": 86400, "default": 30},
        "weight": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 1},
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        "load_balancer": {"type": "string"}}},
      "Instance": {"allOf": [{"$ref": "#/components/schemas/Registration"}, {"type": "object", "properties": {
        "service": {"type": "string"}, "instance_id": {"type": "string"},
        "index": {"type": "integer"}, "create_index": {"type": "integer"},
        "last_heartbeat_age_seconds": {"type": "number"}, "expires_in_seconds": {"type": "number"}}}]},
      "Catalog": {"type": "object", "required": ["index", "services"], "properties": {
        "index": {"type": "integer"}, "stale": {"type": "boolean"},
        "services": {"type": "array", "items": {"type": "object", "properties": {
          "name": {"type": "string"}, "instances": {"type": "array", "items": {"$ref": "#/components/schemas/Instance"}}}}}}},
      "ServiceList": {"type": "object", "properties": {"index": {"type": "integer"}, "services": {"type": "array", "items": {"type": "object", "properties": {
        "name": {"type": "string"}, "versions": {"type": "array", "items": {"type": "string"}},
        "instance_count": {"type": "integer"}, "route_count": {"type": "integer"}}}}}},
      "ServiceDetail": {"type": "object", "properties": {"index": {"type": "integer"}, "name": {"type": "string"},
        "instances": {"type": "array", "items": {"$ref": "#/components/schemas/Instance"}}}}
    }
  }
}
"""#
}
