function __tapper_should_offer_completions_for_flags_or_options -a expected_commands
    set -l non_repeating_flags_or_options $argv[2..]
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __tapper_parse_tokens
    test "$commands" = "$expected_commands"; and return $non_repeating_flags_or_options_absent
end

function __tapper_should_offer_completions_for_positional -a expected_commands positional_index_comparison expected_positional_index
    set -l non_repeating_flags_or_options
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __tapper_parse_tokens
    test "$commands" = "$expected_commands" -a \( "$positional_index" "$positional_index_comparison" "$expected_positional_index" \)
end

function __tapper_parse_tokens -S
    set -l unparsed_tokens (__tapper_tokens -pc)
    switch $unparsed_tokens[1]
    case 'tapper'
        __tapper_parse_subcommand 0 'version' 'h/help'
        switch $unparsed_tokens[1]
        case 'registry'
            __tapper_parse_subcommand 0 'version' 'h/help'
            switch $unparsed_tokens[1]
            case 'serve'
                __tapper_parse_subcommand 0 'config=' 'host=' 'port=' 'backend=' 'data-dir=' 'token-file=' 'read-token-file=' 'protect-reads' 'max-body-bytes=' 'max-wait=' 'log-level=' 'version' 'h/help'
            end
        case 'gateway'
            __tapper_parse_subcommand 0 'version' 'h/help'
            switch $unparsed_tokens[1]
            case 'serve'
                __tapper_parse_subcommand 0 'config=' 'host=' 'port=' 'registry=' 'registry-port=' 'data-dir=' 'token-file=' 'discovery-interval=' 'timeout=' 'load-balancer=' 'rate-limit=' 'rate-limit-key=' 'rate-limit-store=' 'rate-limit-failure=' 'rate-limit-sync=' 'version-header=' 'version-cookie=' 'trusted-proxies=+' 'admin-token-file=' 'admin-port=' 'admin-host=' 'tls-port=' 'tls-cert=+' 'tls-key=+' 'no-http2' 'http2-max-streams=' 'upstream-protocol=' 'auth=' 'api-keys-file=' 'jwt-key-file=' 'jwt-algorithm=' 'jwt-issuer=' 'jwt-audience=+' 'jwt-leeway=' 'otlp-endpoint=' 'trace-sample-rate=' 'otlp-service-name=' 'threads=' 'max-body-size=' 'max-header-size=' 'header-timeout=' 'idle-timeout=' 'tunnel-idle-timeout=' 'drain-timeout=' 'docs-path=' 'openapi-path=' 'no-docs' 'no-access-log' 'health-interval=' 'health-timeout=' 'health-fall=' 'health-rise=' 'no-health-checks' 'outlier-failures=' 'ejection-time=' 'max-ejection-percent=' 'panic-routing' 'log-level=' 'version' 'h/help'
            end
        case 'service'
            __tapper_parse_subcommand 0 'version' 'h/help'
            switch $unparsed_tokens[1]
            case 'register'
                __tapper_parse_subcommand 1 'url=' 'instance-id=' 'version=' 'description=' 'prefix=' 'health-endpoint=' 'tag=+' 'route=+' 'public-route=+' 'ttl=' 'weight=' 'traffic-weight=' 'rate-limit=' 'protocol=' 'meta=+' 'openapi' 'openapi-path=' 'keep-alive' 'json' 'registry=' 'token=' 'log-level=' 'version' 'h/help'
            case 'deregister'
                __tapper_parse_subcommand 2 'registry=' 'token=' 'version' 'h/help'
            case 'list'
                __tapper_parse_subcommand 0 'json' 'registry=' 'token=' 'version' 'h/help'
            end
        case 'status'
            __tapper_parse_subcommand 0 'service=' 'json' 'quiet' 'watch' 'gateway=' 'admin-token=' 'registry=' 'token=' 'version' 'h/help'
        case 'route'
            __tapper_parse_subcommand 0 'version' 'h/help'
            switch $unparsed_tokens[1]
            case 'test'
                __tapper_parse_subcommand 2 'file=' 'only-failures' 'fail-under=' 'send' 'H=+' 'd/data=' 'json' 'gateway=' 'admin-token=' 'registry=' 'token=' 'version' 'h/help'
            end
        case 'shell'
            __tapper_parse_subcommand 0 'registry=' 'gateway=' 'no-history' 'version' 'h/help'
        case 'help'
            __tapper_parse_subcommand -r 1 'version'
        end
    end
end

function __tapper_tokens
    if test (string split -m 1 -f 1 -- . "$FISH_VERSION") -gt 3
        commandline --tokens-raw $argv
    else
        commandline -o $argv
    end
end

function __tapper_parse_subcommand -S -a positional_count
    argparse -s r -- $argv
    set -l option_specs $argv[2..]
    set -l is_repeating_positional $_flag_r
    set -el _flag_r
    set -a commands $unparsed_tokens[1]
    set positional_index 0
    while true
        set -e unparsed_tokens[1]
        argparse -sn "$commands" $option_specs -- $unparsed_tokens 2> /dev/null
        set unparsed_tokens $argv
        set positional_index (math $positional_index + 1)
        for non_repeating_flag_or_option in $non_repeating_flags_or_options
            if set -ql "_flag_$(string replace -a - _ -- $non_repeating_flag_or_option)"
                set non_repeating_flags_or_options_absent 1
                break
            end
        end
        test (count $unparsed_tokens) -eq 0 -o \( -z "$is_repeating_positional" -a "$positional_index" -gt "$positional_count" \) && break
    end
end

function __tapper_complete_directories
    set -l token (commandline -t)
    string match -- '*/' $token
    set -l subdirs $token*/
    printf %s\n $subdirs
end

function __tapper_custom_completion
    set -x SAP_SHELL fish
    set -x SAP_SHELL_VERSION $FISH_VERSION
    set -l tokens (__tapper_tokens -p)
    if test -z "$(__tapper_tokens -t)"
        set -l index (count (__tapper_tokens -pc))
        set tokens $tokens[..$index] \'\' $tokens[(math $index + 1)..]
    end
    command $tokens[1] $argv $tokens
end

complete -c 'tapper' -f
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper" version' -l 'version' -d 'Show the version.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_positional "tapper" -eq 1' -fa 'registry' -d 'Run the service registry.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_positional "tapper" -eq 1' -fa 'gateway' -d 'Run the API gateway.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_positional "tapper" -eq 1' -fa 'service' -d 'Register, deregister and list services.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_positional "tapper" -eq 1' -fa 'status' -d 'Show services, instances and their health.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_positional "tapper" -eq 1' -fa 'route' -d 'Inspect routing.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_positional "tapper" -eq 1' -fa 'shell' -d 'Interactive shell: every command without the word \'tapper\', with completion and history.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_positional "tapper" -eq 1' -fa 'help' -d 'Show subcommand help information.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper registry" version' -l 'version' -d 'Show the version.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper registry" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_positional "tapper registry" -eq 1' -fa 'serve' -d 'Serve the registry API.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper registry serve" config' -l 'config' -d 'Read settings from this YAML file\'s \'registry:\' section (keys are these options\' names, e.g. backend: etcd://127.0.0.1:2379); flags and TAPPER_REGISTRY_* variables win over it. Token files are re-read when they change; other changes to the file take effect at restart.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper registry serve" host' -l 'host' -d 'Address to listen on.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper registry serve" port' -l 'port' -d 'Port to listen on (0 picks a free port).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper registry serve" backend' -l 'backend' -d 'Where registrations are kept: \'memory\', \'redis://[user:password@]host:port[/db]\', \'etcd://host:port[,host:port…][/prefix]\' or \'consul://host:port\'.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper registry serve" data-dir' -l 'data-dir' -d 'Keep the memory backend\'s registrations in DIR across restarts.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper registry serve" token-file' -l 'token-file' -d 'File holding the bearer token required for writes (re-read when it changes).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper registry serve" read-token-file' -l 'read-token-file' -d 'File holding a read-only bearer token: reads only, a write with it gets 403 (re-read when it changes).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper registry serve" protect-reads' -l 'protect-reads' -d 'Reads need a token too (the write token or the read-only one); GET /v1/health stays open.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper registry serve" max-body-bytes' -l 'max-body-bytes' -d 'Largest accepted request body in bytes.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper registry serve" max-wait' -l 'max-wait' -d 'Longest wait of a blocking query (GET /v1/catalog?index=N&wait=…); a longer one is cut to it. The default wait is 30s, or this when shorter.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper registry serve" log-level' -l 'log-level' -d 'Log level: trace, debug, info, notice, warning, error or critical.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper registry serve" version' -l 'version' -d 'Show the version.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper registry serve" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway" version' -l 'version' -d 'Show the version.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_positional "tapper gateway" -eq 1' -fa 'serve' -d 'Route requests to healthy service instances.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" config' -l 'config' -d 'Read settings from this YAML file\'s \'gateway:\' section (keys are these options\' names, e.g. rate-limit: 100/s); flags and TAPPER_GATEWAY_* variables win over it. Re-read when it changes (checked every second and on SIGHUP): the rate limits apply at once, the rest at restart.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" host' -l 'host' -d 'Address to listen on.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" port' -l 'port' -d 'Port to listen on (0 picks a free port).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" registry' -l 'registry' -d 'Follow this registry (http://…) or read its store (etcd://…, redis://…, consul://…) instead of running an embedded one.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" registry-port' -l 'registry-port' -d 'Port of the embedded registry\'s API (ignored with --registry; 0 picks a free port).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" data-dir' -l 'data-dir' -d 'Keep the embedded registry\'s registrations in DIR across restarts.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" token-file' -l 'token-file' -d 'Token file for the embedded registry\'s writes, or the remote registry\'s reads.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" discovery-interval' -l 'discovery-interval' -d 'Seconds between full resyncs with the registry.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" timeout' -l 'timeout' -d 'Upstream connect and response timeout in seconds (→ 504).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" load-balancer' -l 'load-balancer' -d 'Default load balancer.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" rate-limit' -l 'rate-limit' -d 'Gateway-wide request rate limit per key, e.g. 100/s or 6000/m (token bucket; over it: 429 with Retry-After and RateLimit headers).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" rate-limit-key' -l 'rate-limit-key' -d 'What --rate-limit counts by: ip (the client address), subject (the --auth subject) or header:NAME.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" rate-limit-store' -l 'rate-limit-store' -d 'Where the rate limits are counted: local (each gateway alone), shared (in the --registry redis://… or etcd://… store, so gateways sharing it share every limit), or a redis://… or etcd://… URL.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" rate-limit-failure' -l 'rate-limit-failure' -d 'While the shared rate-limit store is down: open (each gateway limits on its own) or closed (limited requests get 503).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" rate-limit-sync' -l 'rate-limit-sync' -d 'Seconds between syncs with the shared rate-limit store (how far the gateways together may overshoot a limit).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" version-header' -l 'version-header' -d 'Request header that pins a service version, e.g. \'X-Tapper-Version: 2.0.0\' (a pinned version with no healthy instance gets 503); \'\' turns pinning by header off.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" version-cookie' -l 'version-cookie' -d 'Cookie that pins a service version (a version that is gone falls back to the traffic split); \'\' turns it off.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve"' -l 'trusted-proxies' -d 'Proxies whose X-Forwarded-For/-Proto/-Host are believed (CIDRs or addresses, e.g. 10.0.0.0/8 ::1); from anyone else they are replaced by the peer address.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" admin-token-file' -l 'admin-token-file' -d 'File holding the bearer token /_tapper/* needs (re-read when it changes); /health stays open.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" admin-port' -l 'admin-port' -d 'Serve /_tapper/* (and /health) on this port instead of the main one (0 picks a free port).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" admin-host' -l 'admin-host' -d 'Address of the --admin-port listener.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" tls-port' -l 'tls-port' -d 'Serve HTTPS on this port too, beside the plain one (needs --tls-cert and --tls-key; 0 picks a free port).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve"' -l 'tls-cert' -d 'PEM certificate chain (leaf first) for --tls-port; repeat with --tls-key for more names (the first is the default, the others are chosen by SNI). Re-read when it changes.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve"' -l 'tls-key' -d 'PEM private key of the --tls-cert at the same position.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" no-http2' -l 'no-http2' -d 'Speak HTTP/1.1 only: no h2 in TLS\'s ALPN and no h2c with prior knowledge on the plain port.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" http2-max-streams' -l 'http2-max-streams' -d 'Most HTTP/2 streams a client may have open on one connection (SETTINGS_MAX_CONCURRENT_STREAMS).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" upstream-protocol' -l 'upstream-protocol' -d 'How to speak to instances whose registration names no protocol: http1 (HTTP/1.1 keep-alive) or h2c (HTTP/2 with prior knowledge, multiplexed; gRPC needs it).' -rfka 'http1 h2c'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" auth' -l 'auth' -d 'Who may use proxied routes: none, api-key (--api-keys-file) or jwt (--jwt-key-file). Public routes and /health are always open.' -rfka 'none api-key jwt'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" api-keys-file' -l 'api-keys-file' -d 'With --auth api-key: one key a line, KEY or NAME:KEY (re-read when it changes).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" jwks-file jwt-key-file' -l 'jwt-key-file' -l 'jwks-file' -d 'With --auth jwt: a JWKS file, a PEM public key or certificate (RS256, ES256), or an HS256 secret (re-read when it changes).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" jwt-algorithm' -l 'jwt-algorithm' -d 'With --auth jwt: the algorithm of --jwt-key-file (HS256, RS256, ES256; default: from the file).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" jwt-issuer' -l 'jwt-issuer' -d 'With --auth jwt: the iss claim tokens must carry.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve"' -l 'jwt-audience' -d 'With --auth jwt: an aud a token must name (repeatable; any one suffices).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" jwt-leeway' -l 'jwt-leeway' -d 'With --auth jwt: seconds of clock skew allowed on exp and nbf.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" otlp-endpoint' -l 'otlp-endpoint' -d 'Export a span per proxied request over OTLP/HTTP (protobuf) to this receiver, e.g. http://127.0.0.1:4318 (/v1/traces is appended); default: $OTEL_EXPORTER_OTLP_ENDPOINT. Without either, tracing is off and traceparent passes through untouched.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" trace-sample-rate' -l 'trace-sample-rate' -d 'With tracing on: the share of new traces recorded, 0-1 (an incoming traceparent\'s sampled flag decides for its trace).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" otlp-service-name' -l 'otlp-service-name' -d 'With tracing on: the service.name of the gateway\'s spans.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" threads' -l 'threads' -d 'Event-loop threads (0: one per core).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" max-body-size' -l 'max-body-size' -d 'Largest request body in bytes (→ 413).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" max-header-size' -l 'max-header-size' -d 'Largest request head in bytes (→ 431).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" header-timeout' -l 'header-timeout' -d 'Seconds a client has to send its request head (→ 408).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" idle-timeout' -l 'idle-timeout' -d 'Seconds before an idle client connection is closed.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" tunnel-idle-timeout' -l 'tunnel-idle-timeout' -d 'Seconds an upgraded connection (WebSocket) may pass no byte either way before it is closed; request timeouts do not apply to it.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" drain-timeout' -l 'drain-timeout' -d 'Seconds in-flight requests get to finish on SIGTERM.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" docs-path' -l 'docs-path' -d 'Where the gateway serves Swagger UI for the merged document of its services.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" openapi-path' -l 'openapi-path' -d 'Where the gateway serves the merged OpenAPI 3.1 document of its services.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" no-docs' -l 'no-docs' -d 'Serve neither the merged OpenAPI document nor Swagger UI (frees --openapi-path and --docs-path for routes).'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" no-access-log' -l 'no-access-log' -d 'Do not write an access-log line per request.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" health-interval' -l 'health-interval' -d 'Seconds between active health probes of each instance.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" health-timeout' -l 'health-timeout' -d 'Seconds a health probe may take.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" health-fall' -l 'health-fall' -d 'Failed probes in a row before an instance is taken out.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" health-rise' -l 'health-rise' -d 'Passed probes in a row before it is taken back.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" no-health-checks' -l 'no-health-checks' -d 'Do not send active health probes (passive checks still apply).'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" outlier-failures' -l 'outlier-failures' -d 'Consecutive failed requests (errors or 5xx) that eject an instance.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" ejection-time' -l 'ejection-time' -d 'Seconds of the first ejection; each further one lasts longer.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" max-ejection-percent' -l 'max-ejection-percent' -d 'Largest share of a service\'s instances ejected at once, in percent.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" panic-routing' -l 'panic-routing' -d 'When every instance of a service is down, route to all of them instead of answering 503.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" log-level' -l 'log-level' -d 'Log level: trace, debug, info, notice, warning, error or critical.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" version' -l 'version' -d 'Show the version.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper gateway serve" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service" version' -l 'version' -d 'Show the version.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_positional "tapper service" -eq 1' -fa 'register' -d 'Register a service instance with the registry.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_positional "tapper service" -eq 1' -fa 'deregister' -d 'Remove a service instance from the registry.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_positional "tapper service" -eq 1' -fa 'list' -d 'List registered services and their instances.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_positional "tapper service register" -eq 1' -fka '(__tapper_custom_completion ---completion service register -- positional@0 (count (__tapper_tokens -pc)) (__tapper_tokens -tC))'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service register" url' -l 'url' -d 'Where the instance is reachable, e.g. http://127.0.0.1:8002.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service register" instance-id' -l 'instance-id' -d 'Instance id (default: derived from the URL\'s host and port).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service register" version' -l 'version' -d 'Service version.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service register" description' -l 'description' -d 'Human-readable description.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service register" prefix' -l 'prefix' -d 'Path prefix prepended to every route, e.g. /api.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service register" health-endpoint' -l 'health-endpoint' -d 'Path the gateway probes for health.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service register"' -l 'tag' -d 'A tag (repeatable).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service register"' -l 'route' -d 'A route, \'METHODS /path/{param}\' (repeatable).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service register"' -l 'public-route' -d 'A route the gateway serves without authentication, same form as --route (repeatable).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service register" ttl' -l 'ttl' -d 'Seconds the registration lives without a heartbeat.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service register" weight' -l 'weight' -d 'Relative weight for the weighted balancer (1-1000).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service register" traffic-weight' -l 'traffic-weight' -d 'Percentage of the service\'s traffic for this instance\'s version (0-100), e.g. 10 for a canary; versions without one share the rest by instance count.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service register" rate-limit' -l 'rate-limit' -d 'The service\'s rate limit per client (the gateway\'s --rate-limit-key), e.g. 100/s; one route\'s own: a third word in --route, \'GET /search 10/s\'.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service register" protocol' -l 'protocol' -d 'How the gateway speaks to the instance: http1 or h2c (HTTP/2 with prior knowledge, e.g. a gRPC server); default: the gateway\'s --upstream-protocol.' -rfka 'http1 h2c'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service register"' -l 'meta' -d 'Metadata as key=value (repeatable).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service register" openapi' -l 'openapi' -d 'Read the routes from the service\'s OpenAPI 3.x document (FastAPI\'s /openapi.json).'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service register" openapi-path' -l 'openapi-path' -d 'Where the instance serves its OpenAPI document, relative to --url (default with --openapi: /openapi.json); sent as openapi_path, so the gateway merges it into its /openapi.json.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service register" keep-alive' -l 'keep-alive' -d 'Stay in the foreground: heartbeat, re-register when needed, deregister on exit.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service register" json' -l 'json' -d 'Print the stored record as JSON.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service register" registry' -l 'registry' -d 'Registry URL (default: $TAPPER_REGISTRY_URL or http://127.0.0.1:8001).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service register" token' -l 'token' -d 'Bearer token for registry writes (default: $TAPPER_TOKEN).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service register" log-level' -l 'log-level' -d 'Log level: trace, debug, info, notice, warning, error or critical.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service register" version' -l 'version' -d 'Show the version.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service register" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_positional "tapper service deregister" -eq 1' -fka '(__tapper_custom_completion ---completion service deregister -- positional@0 (count (__tapper_tokens -pc)) (__tapper_tokens -tC))'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_positional "tapper service deregister" -eq 2' -fka '(__tapper_custom_completion ---completion service deregister -- positional@1 (count (__tapper_tokens -pc)) (__tapper_tokens -tC))'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service deregister" registry' -l 'registry' -d 'Registry URL (default: $TAPPER_REGISTRY_URL or http://127.0.0.1:8001).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service deregister" token' -l 'token' -d 'Bearer token for registry writes (default: $TAPPER_TOKEN).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service deregister" version' -l 'version' -d 'Show the version.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service deregister" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service list" json' -l 'json' -d 'Print the catalog as JSON.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service list" registry' -l 'registry' -d 'Registry URL (default: $TAPPER_REGISTRY_URL or http://127.0.0.1:8001).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service list" token' -l 'token' -d 'Bearer token for registry writes (default: $TAPPER_TOKEN).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service list" version' -l 'version' -d 'Show the version.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper service list" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper status" service' -l 'service' -d 'Only this service.' -rfka '(__tapper_custom_completion ---completion status -- --service (count (__tapper_tokens -pc)) (__tapper_tokens -tC))'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper status" json' -l 'json' -d 'Print JSON for scripts.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper status" quiet' -l 'quiet' -d 'Print nothing; only the exit status tells.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper status" watch' -l 'watch' -d 'Redraw whenever the catalog changes (blocking query), until Ctrl-C.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper status" gateway' -l 'gateway' -d 'Gateway URL, or its --admin-port listener (default: $TAPPER_GATEWAY_URL or http://127.0.0.1:8000).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper status" admin-token' -l 'admin-token' -d 'Bearer token for the gateway\'s /_tapper/* when it runs with --admin-token-file (default: $TAPPER_ADMIN_TOKEN).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper status" registry' -l 'registry' -d 'Registry URL (default: $TAPPER_REGISTRY_URL or http://127.0.0.1:8001).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper status" token' -l 'token' -d 'Bearer token for registry writes (default: $TAPPER_TOKEN).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper status" version' -l 'version' -d 'Show the version.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper status" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper route" version' -l 'version' -d 'Show the version.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper route" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_positional "tapper route" -eq 1' -fa 'test' -d 'Show which service and instance a request would reach, and why.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper route test" file' -l 'file' -d 'Check a YAML table of cases (method, path, service, params, status) instead.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper route test" only-failures' -l 'only-failures' -d 'With --file: print only the failing cases.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper route test" fail-under' -l 'fail-under' -d 'With --file: fail when fewer than PCT percent of the registered routes are exercised.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper route test" send' -l 'send' -d 'Send the request through the gateway.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper route test"' -s 'H' -d 'A request header for --send, \'Name: value\' (repeatable).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper route test" d data' -s 'd' -l 'data' -d 'Request body for --send; @FILE reads a file.' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper route test" json' -l 'json' -d 'Print JSON.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper route test" gateway' -l 'gateway' -d 'Gateway URL, or its --admin-port listener (default: $TAPPER_GATEWAY_URL or http://127.0.0.1:8000).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper route test" admin-token' -l 'admin-token' -d 'Bearer token for the gateway\'s /_tapper/* when it runs with --admin-token-file (default: $TAPPER_ADMIN_TOKEN).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper route test" registry' -l 'registry' -d 'Registry URL (default: $TAPPER_REGISTRY_URL or http://127.0.0.1:8001).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper route test" token' -l 'token' -d 'Bearer token for registry writes (default: $TAPPER_TOKEN).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper route test" version' -l 'version' -d 'Show the version.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper route test" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper shell" registry' -l 'registry' -d 'Registry URL (default: $TAPPER_REGISTRY_URL or http://127.0.0.1:8001).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper shell" gateway' -l 'gateway' -d 'Gateway URL (default: $TAPPER_GATEWAY_URL or http://127.0.0.1:8000).' -rfka ''
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper shell" no-history' -l 'no-history' -d 'Do not read or write the history file.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper shell" version' -l 'version' -d 'Show the version.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper shell" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'tapper' -n '__tapper_should_offer_completions_for_flags_or_options "tapper help" version' -l 'version' -d 'Show the version.'
