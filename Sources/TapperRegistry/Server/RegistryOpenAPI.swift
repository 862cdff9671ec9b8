import Foundation

/// The registry API as OpenAPI 3.1, served at `GET /v1/openapi.json`.
///
/// The document describes the server that serves it: its security (whether writes, and reads,
/// need a token) and its blocking-query bounds come from the ``RegistryServer/Configuration``.
/// `OpenAPIDocumentTests` checks that every documented operation is routed and every route
/// documented; `scripts/api-fuzz` runs schemathesis against a live registry with this document.
enum RegistryOpenAPI {
    /// The document for a server with `configuration`.
    static func document(for configuration: RegistryServer.Configuration) -> String {
        let writesNeedToken = configuration.token() != nil
        let bearer = #"[{"bearer": []}]"#
        let open = "[]"
        let defaultWait = min(configuration.defaultWait, configuration.maxWait)
        let note =
            writesNeedToken
            ? "Writes need 'Authorization: Bearer TOKEN'" + (configuration.protectReads ? "; so do reads (but GET /v1/health)." : "; reads are open.")
            : "This registry has no token: writes are open."
        return template
            .replacingOccurrences(of: "__WRITE_SECURITY__", with: writesNeedToken ? bearer : open)
            .replacingOccurrences(of: "__READ_SECURITY__", with: configuration.protectReads ? bearer : open)
            .replacingOccurrences(of: "__DEFAULT_WAIT__", with: format(defaultWait))
            .replacingOccurrences(of: "__MAX_WAIT__", with: format(configuration.maxWait))
            .replacingOccurrences(of: "__AUTH_NOTE__", with: note)
    }

    /// A duration in the API's own syntax: `10m`, `30s` or `250ms`.
    static func format(_ d: Duration) -> String {
        let ms = d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
        if ms % 60_000 == 0, ms > 0 { return "\(ms / 60_000)m" }
        if ms % 1000 == 0 { return "\(ms / 1000)s" }
        return "\(ms)ms"
    }

    /// The JSON document with placeholders, written by `scripts/openapi-docs` from
    /// `scripts/openapi/registry.py` (edit that, not this). Patterns are JSON strings: `\\u0000`
    /// in them is the regular-expression escape `\u0000`.
    static let template = #"""
{
 "openapi": "3.1.0",
 "info": {
  "title": "Tapper registry API",
  "version": "1.0.0",
  "description": "Services register, heartbeat and deregister; gateways read the catalog with blocking queries. Every error is {\"error\": {\"code\", \"message\", \"field\"}}. __AUTH_NOTE__"
 },
 "paths": {
  "/v1/services/{service}/instances/{instance_id}": {
   "parameters": [
    {
     "$ref": "#/components/parameters/service"
    },
    {
     "$ref": "#/components/parameters/instance_id"
    }
   ],
   "put": {
    "summary": "Register or update an instance (idempotent)",
    "operationId": "registerInstance",
    "security": __WRITE_SECURITY__,
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/Registration"
       }
      }
     }
    },
    "responses": {
     "201": {
      "description": "created",
      "headers": {
       "X-Tapper-Index": {
        "description": "the catalog's change index",
        "required": true,
        "schema": {
         "type": "integer",
         "minimum": 0
        }
       }
      },
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Instance"
        }
       }
      }
     },
     "200": {
      "description": "updated",
      "headers": {
       "X-Tapper-Index": {
        "description": "the catalog's change index",
        "required": true,
        "schema": {
         "type": "integer",
         "minimum": 0
        }
       }
      },
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Instance"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/Error"
     },
     "401": {
      "$ref": "#/components/responses/Error"
     },
     "403": {
      "$ref": "#/components/responses/Error"
     },
     "409": {
      "description": "a route another service (or an earlier route of this registration) already claims; the message names the owner",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "413": {
      "$ref": "#/components/responses/Error"
     },
     "503": {
      "$ref": "#/components/responses/Error"
     }
    },
    "links": {
     "heartbeat": {
      "operationId": "heartbeat",
      "parameters": {
       "service": "$request.path.service",
       "instance_id": "$request.path.instance_id"
      }
     },
     "deregister": {
      "operationId": "deregisterInstance",
      "parameters": {
       "service": "$request.path.service",
       "instance_id": "$request.path.instance_id"
      }
     },
     "getService": {
      "operationId": "getService",
      "parameters": {
       "service": "$request.path.service"
      }
     },
     "catalog": {
      "operationId": "catalog",
      "parameters": {
       "index": "$response.body#/index"
      }
     }
    }
   },
   "delete": {
    "summary": "Deregister an instance",
    "operationId": "deregisterInstance",
    "security": __WRITE_SECURITY__,
    "responses": {
     "204": {
      "description": "removed"
     },
     "400": {
      "$ref": "#/components/responses/Error"
     },
     "401": {
      "$ref": "#/components/responses/Error"
     },
     "403": {
      "$ref": "#/components/responses/Error"
     },
     "404": {
      "$ref": "#/components/responses/Error"
     },
     "503": {
      "$ref": "#/components/responses/Error"
     }
    }
   }
  },
  "/v1/services/{service}/instances/{instance_id}/heartbeat": {
   "parameters": [
    {
     "$ref": "#/components/parameters/service"
    },
    {
     "$ref": "#/components/parameters/instance_id"
    }
   ],
   "put": {
    "summary": "Refresh an instance's TTL; 404 means register again",
    "operationId": "heartbeat",
    "security": __WRITE_SECURITY__,
    "responses": {
     "200": {
      "description": "refreshed",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "required": [
          "status"
         ],
         "additionalProperties": false,
         "properties": {
          "status": {
           "const": "ok"
          }
         }
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/Error"
     },
     "401": {
      "$ref": "#/components/responses/Error"
     },
     "403": {
      "$ref": "#/components/responses/Error"
     },
     "404": {
      "$ref": "#/components/responses/Error"
     },
     "503": {
      "$ref": "#/components/responses/Error"
     }
    }
   }
  },
  "/v1/services": {
   "get": {
    "summary": "List services",
    "operationId": "listServices",
    "security": __READ_SECURITY__,
    "responses": {
     "200": {
      "description": "services",
      "headers": {
       "X-Tapper-Index": {
        "description": "the catalog's change index",
        "required": true,
        "schema": {
         "type": "integer",
         "minimum": 0
        }
       }
      },
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/ServiceList"
        }
       }
      }
     },
     "401": {
      "$ref": "#/components/responses/Error"
     },
     "503": {
      "$ref": "#/components/responses/Error"
     }
    }
   }
  },
  "/v1/services/{service}": {
   "parameters": [
    {
     "$ref": "#/components/parameters/service"
    }
   ],
   "get": {
    "summary": "One service and its instances",
    "operationId": "getService",
    "security": __READ_SECURITY__,
    "responses": {
     "200": {
      "description": "the service",
      "headers": {
       "X-Tapper-Index": {
        "description": "the catalog's change index",
        "required": true,
        "schema": {
         "type": "integer",
         "minimum": 0
        }
       }
      },
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/ServiceDetail"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/Error"
     },
     "401": {
      "$ref": "#/components/responses/Error"
     },
     "404": {
      "$ref": "#/components/responses/Error"
     },
     "503": {
      "$ref": "#/components/responses/Error"
     }
    }
   }
  },
  "/v1/catalog": {
   "get": {
    "summary": "The whole catalog; with index, a Consul-style blocking query",
    "description": "Without index it answers at once. Otherwise it answers as soon as the catalog's index is greater than index (index=0 on a registry that never changed waits too), or when wait ends: wait defaults to __DEFAULT_WAIT__ and is cut to __MAX_WAIT__ (this server's bounds); up to a sixteenth of it is added at random (jitter, as Consul does) so that watchers that started together spread out.",
    "operationId": "catalog",
    "security": __READ_SECURITY__,
    "parameters": [
     {
      "name": "index",
      "in": "query",
      "description": "wait until the catalog's index is greater than this",
      "schema": {
       "type": "integer",
       "minimum": 0,
       "maximum": 18446744073709551615
      }
     },
     {
      "name": "wait",
      "in": "query",
      "description": "longest wait: 500ms, 30s, 5m, 1h or bare seconds; default __DEFAULT_WAIT__, at most __MAX_WAIT__ (longer is cut), plus up to 1/16 jitter",
      "schema": {
       "type": "string",
       "pattern": "^[0-9]+(\\.[0-9]+)?(ms|s|m|h)?$",
       "examples": [
        "30s",
        "500ms",
        "5m"
       ]
      }
     }
    ],
    "responses": {
     "200": {
      "description": "the catalog",
      "headers": {
       "X-Tapper-Index": {
        "description": "the catalog's change index",
        "required": true,
        "schema": {
         "type": "integer",
         "minimum": 0
        }
       }
      },
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Catalog"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/Error"
     },
     "401": {
      "$ref": "#/components/responses/Error"
     },
     "503": {
      "$ref": "#/components/responses/Error"
     }
    }
   }
  },
  "/v1/health": {
   "get": {
    "summary": "The registry's health and its backend's (never needs a token)",
    "operationId": "health",
    "security": [],
    "responses": {
     "200": {
      "description": "healthy",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Health"
        }
       }
      }
     },
     "503": {
      "description": "backend unavailable",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Health"
        }
       }
      }
     }
    }
   }
  },
  "/v1/openapi.json": {
   "get": {
    "summary": "This document",
    "operationId": "openapi",
    "security": __READ_SECURITY__,
    "responses": {
     "200": {
      "description": "OpenAPI 3.1",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "required": [
          "openapi",
          "paths"
         ]
        }
       }
      }
     },
     "401": {
      "$ref": "#/components/responses/Error"
     }
    }
   }
  }
 },
 "components": {
  "securitySchemes": {
   "bearer": {
    "type": "http",
    "scheme": "bearer"
   }
  },
  "parameters": {
   "service": {
    "name": "service",
    "in": "path",
    "required": true,
    "description": "a DNS label",
    "schema": {
     "type": "string",
     "pattern": "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
    }
   },
   "instance_id": {
    "name": "instance_id",
    "in": "path",
    "required": true,
    "description": "letters, digits, '.', '_', ':' and '-'; may be percent-encoded (':' as %3A)",
    "schema": {
     "type": "string",
     "pattern": "^[A-Za-z0-9._:-]{1,128}$"
    }
   }
  },
  "responses": {
   "Error": {
    "description": "an error",
    "content": {
     "application/json": {
      "schema": {
       "$ref": "#/components/schemas/Error"
      }
     }
    }
   }
  },
  "schemas": {
   "Error": {
    "type": "object",
    "required": [
     "error"
    ],
    "additionalProperties": false,
    "properties": {
     "error": {
      "type": "object",
      "required": [
       "code",
       "message"
      ],
      "additionalProperties": false,
      "properties": {
       "code": {
        "type": "string"
       },
       "message": {
        "type": "string"
       },
       "field": {
        "type": "string"
       }
      }
     }
    }
   },
   "Route": {
    "type": "object",
    "required": [
     "path"
    ],
    "additionalProperties": false,
    "properties": {
     "methods": {
      "type": "array",
      "maxItems": 64,
      "description": "HTTP methods (any case; stored upper-case); empty = any method",
      "items": {
       "type": "string",
       "maxLength": 32,
       "pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
      }
     },
     "path": {
      "type": "string",
      "maxLength": 1536,
      "pattern": "^(?!.*\\{([A-Za-z_][A-Za-z0-9_]*)(:[a-z]+)?\\}.*\\{\\1(:[a-z]+)?\\})(/((([^\\u0000-\\u001F\\u007F-\\u009F ?#\\\\/{}%.]|(%[0-7][0-9A-Fa-f]|%[Cc][2-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Dd][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee]0%[ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][1-9A-Ca-c]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][Dd]%[89][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][EFef]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff]0%[9ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff][1-3]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff]4%8[0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]))([^\\u0000-\\u001F\\u007F-\\u009F ?#\\\\/{}%]|(%[0-7][0-9A-Fa-f]|%[Cc][2-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Dd][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee]0%[ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][1-9A-Ca-c]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][Dd]%[89][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][EFef]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff]0%[9ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff][1-3]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff]4%8[0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]))*|\\.([^\\u0000-\\u001F\\u007F-\\u009F ?#\\\\/{}%.]|(%[0-7][0-9A-Fa-f]|%[Cc][2-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Dd][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee]0%[ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][1-9A-Ca-c]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][Dd]%[89][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][EFef]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff]0%[9ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff][1-3]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff]4%8[0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]))([^\\u0000-\\u001F\\u007F-\\u009F ?#\\\\/{}%]|(%[0-7][0-9A-Fa-f]|%[Cc][2-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Dd][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee]0%[ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][1-9A-Ca-c]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][Dd]%[89][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][EFef]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff]0%[9ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff][1-3]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff]4%8[0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]))*|\\.\\.([^\\u0000-\\u001F\\u007F-\\u009F ?#\\\\/{}%]|(%[0-7][0-9A-Fa-f]|%[Cc][2-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Dd][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee]0%[ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][1-9A-Ca-c]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][Dd]%[89][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][EFef]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff]0%[9ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff][1-3]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff]4%8[0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]))+)|\\{[A-Za-z_][A-Za-z0-9_]*(:(str|int|float|uuid))?\\}))*(/|/\\{[A-Za-z_][A-Za-z0-9_]*:path\\}|/((([^\\u0000-\\u001F\\u007F-\\u009F ?#\\\\/{}%.]|(%[0-7][0-9A-Fa-f]|%[Cc][2-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Dd][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee]0%[ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][1-9A-Ca-c]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][Dd]%[89][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][EFef]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff]0%[9ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff][1-3]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff]4%8[0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]))([^\\u0000-\\u001F\\u007F-\\u009F ?#\\\\/{}%]|(%[0-7][0-9A-Fa-f]|%[Cc][2-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Dd][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee]0%[ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][1-9A-Ca-c]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][Dd]%[89][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][EFef]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff]0%[9ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff][1-3]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff]4%8[0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]))*|\\.([^\\u0000-\\u001F\\u007F-\\u009F ?#\\\\/{}%.]|(%[0-7][0-9A-Fa-f]|%[Cc][2-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Dd][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee]0%[ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][1-9A-Ca-c]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][Dd]%[89][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][EFef]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff]0%[9ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff][1-3]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff]4%8[0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]))([^\\u0000-\\u001F\\u007F-\\u009F ?#\\\\/{}%]|(%[0-7][0-9A-Fa-f]|%[Cc][2-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Dd][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee]0%[ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][1-9A-Ca-c]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][Dd]%[89][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][EFef]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff]0%[9ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff][1-3]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff]4%8[0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]))*|\\.\\.([^\\u0000-\\u001F\\u007F-\\u009F ?#\\\\/{}%]|(%[0-7][0-9A-Fa-f]|%[Cc][2-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Dd][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee]0%[ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][1-9A-Ca-c]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][Dd]%[89][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][EFef]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff]0%[9ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff][1-3]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff]4%8[0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]))+)|\\{[A-Za-z_][A-Za-z0-9_]*(:(str|int|float|uuid))?\\}))$",
      "description": "FastAPI/Starlette template relative to prefix, e.g. /users/{user_id:int}; convertors str, int, float, uuid and path (last segment only); each parameter a whole segment with a distinct name; no '.' or '..' segments, no empty segment but a trailing '/'. Two routes of one registration with the same shape and methods are a conflict (409)."
     },
     "public": {
      "type": "boolean"
     },
     "websocket": {
      "type": "boolean",
      "description": "the route is a WebSocket endpoint (the gateway tunnels any upgrade; this tells route test and status)"
     },
     "rate_limit": {
      "type": "string",
      "pattern": "^[1-9][0-9]{0,8}/([sSmMhH]|[sS][eE][cC]|[sS][eE][cC][oO][nN][dD]|[mM][iI][nN]|[mM][iI][nN][uU][tT][eE]|[hH][oO][uU][rR])$",
      "description": "this route's own rate limit per client key, e.g. 10/s (N/s, N/m or N/h)"
     }
    }
   },
   "Registration": {
    "type": "object",
    "required": [
     "url"
    ],
    "additionalProperties": false,
    "description": "/health and /_tapper/... belong to the gateway: a registration with routes may not have a prefix under /_tapper, and without a prefix no route may be /health or under /_tapper (percent-encoded spellings of these are refused too).",
    "anyOf": [
     {
      "properties": {
       "routes": {
        "maxItems": 0
       }
      }
     },
     {
      "required": [
       "prefix"
      ],
      "properties": {
       "prefix": {
        "minLength": 1,
        "not": {
         "pattern": "^/_tapper(/|$)"
        }
       }
      }
     },
     {
      "properties": {
       "prefix": {
        "maxLength": 0
       },
       "routes": {
        "items": {
         "properties": {
          "path": {
           "not": {
            "pattern": "^/(health$|_tapper(/|$))"
           }
          }
         }
        }
       }
      }
     }
    ],
    "properties": {
     "url": {
      "type": "string",
      "pattern": "^[Hh][Tt][Tt][Pp]([Ss])?://([A-Za-z0-9._-]+|\\[[0-9A-Fa-f:.]+\\])(:0*([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?/?$",
      "description": "http(s)://host[:port] (an origin: no path, query, credentials or spaces)"
     },
     "version": {
      "type": "string",
      "minLength": 1,
      "maxLength": 64,
      "pattern": "^[^\\u0000-\\u001F\\u007F-\\u009F]*$",
      "default": "0.0.0"
     },
     "description": {
      "type": "string",
      "maxLength": 1024,
      "pattern": "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
     },
     "prefix": {
      "type": "string",
      "maxLength": 512,
      "anyOf": [
       {
        "const": ""
       },
       {
        "pattern": "^(/(([^\\u0000-\\u001F\\u007F-\\u009F ?#\\\\/{}%.]|(%[0-7][0-9A-Fa-f]|%[Cc][2-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Dd][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee]0%[ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][1-9A-Ca-c]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][Dd]%[89][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][EFef]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff]0%[9ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff][1-3]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff]4%8[0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]))([^\\u0000-\\u001F\\u007F-\\u009F ?#\\\\/{}%]|(%[0-7][0-9A-Fa-f]|%[Cc][2-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Dd][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee]0%[ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][1-9A-Ca-c]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][Dd]%[89][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][EFef]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff]0%[9ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff][1-3]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff]4%8[0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]))*|\\.([^\\u0000-\\u001F\\u007F-\\u009F ?#\\\\/{}%.]|(%[0-7][0-9A-Fa-f]|%[Cc][2-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Dd][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee]0%[ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][1-9A-Ca-c]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][Dd]%[89][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][EFef]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff]0%[9ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff][1-3]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff]4%8[0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]))([^\\u0000-\\u001F\\u007F-\\u009F ?#\\\\/{}%]|(%[0-7][0-9A-Fa-f]|%[Cc][2-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Dd][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee]0%[ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][1-9A-Ca-c]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][Dd]%[89][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][EFef]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff]0%[9ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff][1-3]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff]4%8[0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]))*|\\.\\.([^\\u0000-\\u001F\\u007F-\\u009F ?#\\\\/{}%]|(%[0-7][0-9A-Fa-f]|%[Cc][2-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Dd][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee]0%[ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][1-9A-Ca-c]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][Dd]%[89][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ee][EFef]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff]0%[9ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff][1-3]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]|%[Ff]4%8[0-9A-Fa-f]%[89ABab][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]))+))+$"
       }
      ],
      "default": "",
      "description": "path prefix of every route, e.g. /api: literal segments only, no trailing '/'"
     },
     "health_endpoint": {
      "type": "string",
      "maxLength": 512,
      "pattern": "^/[^\\u0000-\\u001F\\u007F-\\u009F ]*$",
      "default": "/health"
     },
     "tags": {
      "type": "array",
      "maxItems": 64,
      "items": {
       "type": "string",
       "minLength": 1,
       "maxLength": 128,
       "pattern": "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
      }
     },
     "routes": {
      "type": "array",
      "maxItems": 2000,
      "items": {
       "$ref": "#/components/schemas/Route"
      }
     },
     "ttl_seconds": {
      "type": "number",
      "minimum": 1,
      "maximum": 86400,
      "default": 30
     },
     "weight": {
      "type": "integer",
      "minimum": 1,
      "maximum": 1000,
      "default": 1
     },
     "metadata": {
      "type": "object",
      "maxProperties": 64,
      "propertyNames": {
       "maxLength": 128,
       "pattern": "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
      },
      "additionalProperties": {
       "type": "string",
       "maxLength": 1024,
       "pattern": "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
      }
     },
     "load_balancer": {
      "type": "string",
      "maxLength": 64,
      "pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$",
      "description": "round-robin, random, least-connections or weighted"
     },
     "traffic_weight": {
      "type": "number",
      "minimum": 0,
      "maximum": 100,
      "description": "percentage of the service's requests for this instance's version (canary); versions without one share the rest by instance count"
     },
     "rate_limit": {
      "type": "string",
      "pattern": "^[1-9][0-9]{0,8}/([sSmMhH]|[sS][eE][cC]|[sS][eE][cC][oO][nN][dD]|[mM][iI][nN]|[mM][iI][nN][uU][tT][eE]|[hH][oO][uU][rR])$",
      "description": "the service's rate limit per client key over all its routes, e.g. 100/s (N/s, N/m or N/h); the strictest of its instances' wins"
     },
     "openapi_path": {
      "type": "string",
      "maxLength": 512,
      "pattern": "^/([^\\u0000-\\u001F\\u007F-\\u009F #/][^\\u0000-\\u001F\\u007F-\\u009F #]*)?$",
      "description": "where the instance serves its OpenAPI document, relative to url (FastAPI: /openapi.json); the gateway merges it into its /openapi.json"
     },
     "protocol": {
      "type": "string",
      "enum": [
       "http1",
       "h2c"
      ],
      "description": "how the gateway speaks to the instance: http1 (HTTP/1.1 keep-alive) or h2c (HTTP/2 with prior knowledge, multiplexed; gRPC servers); absent: the gateway's --upstream-protocol"
     }
    }
   },
   "Instance": {
    "type": "object",
    "required": [
     "service",
     "instance_id",
     "index",
     "create_index",
     "url",
     "version",
     "routes"
    ],
    "properties": {
     "service": {
      "type": "string"
     },
     "instance_id": {
      "type": "string"
     },
     "index": {
      "type": "integer"
     },
     "create_index": {
      "type": "integer"
     },
     "last_heartbeat_age_seconds": {
      "type": "number"
     },
     "expires_in_seconds": {
      "type": "number"
     },
     "url": {
      "type": "string"
     },
     "version": {
      "type": "string"
     },
     "description": {
      "type": "string"
     },
     "prefix": {
      "type": "string"
     },
     "health_endpoint": {
      "type": "string"
     },
     "tags": {
      "type": "array",
      "items": {
       "type": "string"
      }
     },
     "routes": {
      "type": "array",
      "items": {
       "type": "object",
       "required": [
        "methods",
        "path"
       ],
       "properties": {
        "methods": {
         "type": "array",
         "items": {
          "type": "string"
         }
        },
        "path": {
         "type": "string"
        },
        "public": {
         "type": "boolean"
        },
        "websocket": {
         "type": "boolean"
        },
        "rate_limit": {
         "type": "string"
        }
       }
      }
     },
     "ttl_seconds": {
      "type": "number"
     },
     "weight": {
      "type": "integer"
     },
     "metadata": {
      "type": "object",
      "additionalProperties": {
       "type": "string"
      }
     },
     "load_balancer": {
      "type": "string"
     },
     "traffic_weight": {
      "type": "number"
     },
     "rate_limit": {
      "type": "string"
     },
     "openapi_path": {
      "type": "string"
     },
     "protocol": {
      "type": "string",
      "enum": [
       "http1",
       "h2c"
      ]
     }
    }
   },
   "Catalog": {
    "type": "object",
    "required": [
     "index",
     "services"
    ],
    "properties": {
     "index": {
      "type": "integer"
     },
     "stale": {
      "type": "boolean"
     },
     "services": {
      "type": "array",
      "items": {
       "type": "object",
       "required": [
        "name",
        "instances"
       ],
       "properties": {
        "name": {
         "type": "string"
        },
        "instances": {
         "type": "array",
         "items": {
          "$ref": "#/components/schemas/Instance"
         }
        }
       }
      }
     }
    }
   },
   "ServiceList": {
    "type": "object",
    "required": [
     "index",
     "services"
    ],
    "properties": {
     "index": {
      "type": "integer"
     },
     "services": {
      "type": "array",
      "items": {
       "type": "object",
       "required": [
        "name",
        "versions",
        "instance_count",
        "route_count"
       ],
       "properties": {
        "name": {
         "type": "string"
        },
        "versions": {
         "type": "array",
         "items": {
          "type": "string"
         }
        },
        "instance_count": {
         "type": "integer"
        },
        "route_count": {
         "type": "integer"
        }
       }
      }
     }
    }
   },
   "ServiceDetail": {
    "type": "object",
    "required": [
     "index",
     "name",
     "instances"
    ],
    "properties": {
     "index": {
      "type": "integer"
     },
     "name": {
      "type": "string"
     },
     "instances": {
      "type": "array",
      "items": {
       "$ref": "#/components/schemas/Instance"
      }
     }
    }
   },
   "Health": {
    "type": "object",
    "required": [
     "status",
     "backend"
    ],
    "properties": {
     "status": {
      "enum": [
       "ok",
       "degraded"
      ]
     },
     "index": {
      "type": "integer"
     },
     "instances": {
      "type": "integer"
     },
     "backend": {
      "type": "object",
      "required": [
       "name",
       "status"
      ],
      "properties": {
       "name": {
        "type": "string"
       },
       "status": {
        "enum": [
         "ok",
         "stale",
         "unavailable"
        ]
       },
       "error": {
        "type": "string"
       }
      }
     }
    }
   }
  }
 }
}
"""#
}
