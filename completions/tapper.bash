#!/bin/bash

__tapper_cursor_index_in_current_word() {
    local remaining="${COMP_LINE}"

    local word
    for word in "${COMP_WORDS[@]::COMP_CWORD}"; do
        remaining="${remaining##*([[:space:]])"${word}"*([[:space:]])}"
    done

    local -ir index="$((COMP_POINT - ${#COMP_LINE} + ${#remaining}))"
    if [[ "${index}" -le 0 ]]; then
        printf 0
    else
        printf %s "${index}"
    fi
}

# positional arguments:
#
# - 1: the current (sub)command's count of positional arguments
#
# required variables:
#
# - repeating_flags: the repeating flags that the current (sub)command can accept
# - non_repeating_flags: the non-repeating flags that the current (sub)command can accept
# - repeating_options: the repeating options that the current (sub)command can accept
# - non_repeating_options: the non-repeating options that the current (sub)command can accept
# - positional_number: value ignored
# - unparsed_words: unparsed words from the current command line
#
# modified variables:
#
# - non_repeating_flags: remove flags for this (sub)command that are already on the command line
# - non_repeating_options: remove options for this (sub)command that are already on the command line
# - positional_number: set to the current positional number
# - unparsed_words: remove all flags, options, and option values for this (sub)command
__tapper_offer_flags_options() {
    local -ir positional_count="${1}"
    positional_number=0

    local was_flag_option_terminator_seen=false
    local is_parsing_option_value=false

    local -ar unparsed_word_indices=("${!unparsed_words[@]}")
    local -i word_index
    for word_index in "${unparsed_word_indices[@]}"; do
        if "${is_parsing_option_value}"; then
            # This word is an option value:
            # Reset marker for next word iff not currently the last word
            [[ "${word_index}" -ne "${unparsed_word_indices[${#unparsed_word_indices[@]} - 1]}" ]] && is_parsing_option_value=false
            unset "unparsed_words[${word_index}]"
            # Do not process this word as a flag or an option
            continue
        fi

        local word="${unparsed_words["${word_index}"]}"
        if ! "${was_flag_option_terminator_seen}"; then
            case "${word}" in
            --)
                unset "unparsed_words[${word_index}]"
                # by itself -- is a flag/option terminator, but if it is the last word, it is the start of a completion
                if [[ "${word_index}" -ne "${unparsed_word_indices[${#unparsed_word_indices[@]} - 1]}" ]]; then
                    was_flag_option_terminator_seen=true
                fi
                continue
                ;;
            -*)
                # ${word} is a flag or an option
                # If ${word} is an option, mark that the next word to be parsed is an option value
                local option
                for option in "${repeating_options[@]}" "${non_repeating_options[@]}"; do
                    [[ "${word}" = "${option}" ]] && is_parsing_option_value=true && break
                done

                # Remove ${word} from ${non_repeating_flags} or ${non_repeating_options} so it isn't offered again
                local not_found=true
                local -i index
                for index in "${!non_repeating_flags[@]}"; do
                    if [[ "${non_repeating_flags[${index}]}" = "${word}" ]]; then
                        unset "non_repeating_flags[${index}]"
                        non_repeating_flags=("${non_repeating_flags[@]}")
                        not_found=false
                        break
                    fi
                done
                if "${not_found}"; then
                    for index in "${!non_repeating_flags[@]}"; do
                        if [[ "${non_repeating_flags[${index}]}" = "${word}" ]]; then
                            unset "non_repeating_flags[${index}]"
                            non_repeating_flags=("${non_repeating_flags[@]}")
                            break
                        fi
                    done
                fi
                unset "unparsed_words[${word_index}]"
                continue
                ;;
            esac
        fi

        # ${word} is neither a flag, nor an option, nor an option value
        if [[ "${positional_number}" -lt "${positional_count}" || "${positional_count}" -lt 0 ]]; then
            # ${word} is a positional
            ((positional_number++))
            unset "unparsed_words[${word_index}]"
        else
            if [[ -z "${word}" ]]; then
                # Could be completing a flag, option, or subcommand
                positional_number=-1
            else
                # ${word} is a subcommand or invalid, so stop processing this (sub)command
                positional_number=-2
            fi
            break
        fi
    done

    unparsed_words=("${unparsed_words[@]}")

    if\
        ! "${was_flag_option_terminator_seen}"\
        && ! "${is_parsing_option_value}"\
        && [[ ("${cur}" = -* && "${positional_number}" -ge 0) || "${positional_number}" -eq -1 ]]
    then
        COMPREPLY+=($(compgen -W "${repeating_flags[*]} ${non_repeating_flags[*]} ${repeating_options[*]} ${non_repeating_options[*]}" -- "${cur}"))
    fi
}

__tapper_add_completions() {
    local completion
    while IFS='' read -r completion; do
        COMPREPLY+=("${completion}")
    done < <(IFS=$'\n' compgen "${@}" -- "${cur}")
}

__tapper_custom_complete() {
    if [[ -n "${cur}" || -z ${COMP_WORDS[${COMP_CWORD}]} || "${COMP_LINE:${COMP_POINT}:1}" != ' ' ]]; then
        local -ar words=("${COMP_WORDS[@]}")
    else
        local -ar words=("${COMP_WORDS[@]::${COMP_CWORD}}" '' "${COMP_WORDS[@]:${COMP_CWORD}}")
    fi

    "${COMP_WORDS[0]}" "${@}" "${words[@]}"
}

_tapper() {
    local state
    state="$(shopt -p;shopt -po)"
    trap "${state//$'\n'/;}" RETURN
    shopt -s extglob
    set +o history +o posix

    local -xr SAP_SHELL=bash
    local -x SAP_SHELL_VERSION
    SAP_SHELL_VERSION="$(IFS='.';printf %s "${BASH_VERSINFO[*]}")"
    local -r SAP_SHELL_VERSION

    local -r cur="${2}"
    local -r prev="${3}"

    local -i positional_number
    local -a unparsed_words=("${COMP_WORDS[@]:1:${COMP_CWORD}}")

    local -a repeating_flags=()
    local -a non_repeating_flags=(--version -h --help)
    local -a repeating_options=()
    local -a non_repeating_options=()
    __tapper_offer_flags_options 0

    # Offer subcommand / subcommand argument completions
    local -r subcommand="${unparsed_words[0]}"
    unset 'unparsed_words[0]'
    unparsed_words=("${unparsed_words[@]}")
    case "${subcommand}" in
    registry|gateway|service|status|route|shell|help)
        # Offer subcommand argument completions
        "_tapper_${subcommand}"
        ;;
    *)
        # Offer subcommand completions
        COMPREPLY+=($(compgen -W 'registry gateway service status route shell help' -- "${cur}"))
        ;;
    esac
}

_tapper_registry() {
    repeating_flags=()
    non_repeating_flags=(--version -h --help)
    repeating_options=()
    non_repeating_options=()
    __tapper_offer_flags_options 0

    # Offer subcommand / subcommand argument completions
    local -r subcommand="${unparsed_words[0]}"
    unset 'unparsed_words[0]'
    unparsed_words=("${unparsed_words[@]}")
    case "${subcommand}" in
    serve)
        # Offer subcommand argument completions
        "_tapper_registry_${subcommand}"
        ;;
    *)
        # Offer subcommand completions
        COMPREPLY+=($(compgen -W 'serve' -- "${cur}"))
        ;;
    esac
}

_tapper_registry_serve() {
    repeating_flags=()
    non_repeating_flags=(--protect-reads --version -h --help)
    repeating_options=()
    non_repeating_options=(--config --host --port --backend --data-dir --token-file --read-token-file --max-body-bytes --max-wait --log-level)
    __tapper_offer_flags_options 0

    # Offer option value completions
    case "${prev}" in
    '--config')
        return
        ;;
    '--host')
        return
        ;;
    '--port')
        return
        ;;
    '--backend')
        return
        ;;
    '--data-dir')
        return
        ;;
    '--token-file')
        return
        ;;
    '--read-token-file')
        return
        ;;
    '--max-body-bytes')
        return
        ;;
    '--max-wait')
        return
        ;;
    '--log-level')
        return
        ;;
    esac
}

_tapper_gateway() {
    repeating_flags=()
    non_repeating_flags=(--version -h --help)
    repeating_options=()
    non_repeating_options=()
    __tapper_offer_flags_options 0

    # Offer subcommand / subcommand argument completions
    local -r subcommand="${unparsed_words[0]}"
    unset 'unparsed_words[0]'
    unparsed_words=("${unparsed_words[@]}")
    case "${subcommand}" in
    serve)
        # Offer subcommand argument completions
        "_tapper_gateway_${subcommand}"
        ;;
    *)
        # Offer subcommand completions
        COMPREPLY+=($(compgen -W 'serve' -- "${cur}"))
        ;;
    esac
}

_tapper_gateway_serve() {
    repeating_flags=()
    non_repeating_flags=(--no-http2 --no-docs --no-access-log --no-health-checks --panic-routing --version -h --help)
    repeating_options=(--trusted-proxies --tls-cert --tls-key --jwt-audience)
    non_repeating_options=(--config --host --port --registry --registry-port --data-dir --token-file --discovery-interval --timeout --load-balancer --rate-limit --rate-limit-key --rate-limit-store --rate-limit-failure --rate-limit-sync --version-header --version-cookie --admin-token-file --admin-port --admin-host --tls-port --http2-max-streams --upstream-protocol --auth --api-keys-file --jwt-key-file --jwks-file --jwt-algorithm --jwt-issuer --jwt-leeway --otlp-endpoint --trace-sample-rate --otlp-service-name --threads --max-body-size --max-header-size --header-timeout --idle-timeout --tunnel-idle-timeout --drain-timeout --docs-path --openapi-path --health-interval --health-timeout --health-fall --health-rise --outlier-failures --ejection-time --max-ejection-percent --log-level)
    __tapper_offer_flags_options 0

    # Offer option value completions
    case "${prev}" in
    '--config')
        return
        ;;
    '--host')
        return
        ;;
    '--port')
        return
        ;;
    '--registry')
        return
        ;;
    '--registry-port')
        return
        ;;
    '--data-dir')
        return
        ;;
    '--token-file')
        return
        ;;
    '--discovery-interval')
        return
        ;;
    '--timeout')
        return
        ;;
    '--load-balancer')
        return
        ;;
    '--rate-limit')
        return
        ;;
    '--rate-limit-key')
        return
        ;;
    '--rate-limit-store')
        return
        ;;
    '--rate-limit-failure')
        return
        ;;
    '--rate-limit-sync')
        return
        ;;
    '--version-header')
        return
        ;;
    '--version-cookie')
        return
        ;;
    '--trusted-proxies')
        return
        ;;
    '--admin-token-file')
        return
        ;;
    '--admin-port')
        return
        ;;
    '--admin-host')
        return
        ;;
    '--tls-port')
        return
        ;;
    '--tls-cert')
        return
        ;;
    '--tls-key')
        return
        ;;
    '--http2-max-streams')
        return
        ;;
    '--upstream-protocol')
        __tapper_add_completions -W 'http1'$'\n''h2c'
        return
        ;;
    '--auth')
        __tapper_add_completions -W 'none'$'\n''api-key'$'\n''jwt'
        return
        ;;
    '--api-keys-file')
        return
        ;;
    '--jwt-key-file'|'--jwks-file')
        return
        ;;
    '--jwt-algorithm')
        return
        ;;
    '--jwt-issuer')
        return
        ;;
    '--jwt-audience')
        return
        ;;
    '--jwt-leeway')
        return
        ;;
    '--otlp-endpoint')
        return
        ;;
    '--trace-sample-rate')
        return
        ;;
    '--otlp-service-name')
        return
        ;;
    '--threads')
        return
        ;;
    '--max-body-size')
        return
        ;;
    '--max-header-size')
        return
        ;;
    '--header-timeout')
        return
        ;;
    '--idle-timeout')
        return
        ;;
    '--tunnel-idle-timeout')
        return
        ;;
    '--drain-timeout')
        return
        ;;
    '--docs-path')
        return
        ;;
    '--openapi-path')
        return
        ;;
    '--health-interval')
        return
        ;;
    '--health-timeout')
        return
        ;;
    '--health-fall')
        return
        ;;
    '--health-rise')
        return
        ;;
    '--outlier-failures')
        return
        ;;
    '--ejection-time')
        return
        ;;
    '--max-ejection-percent')
        return
        ;;
    '--log-level')
        return
        ;;
    esac
}

_tapper_service() {
    repeating_flags=()
    non_repeating_flags=(--version -h --help)
    repeating_options=()
    non_repeating_options=()
    __tapper_offer_flags_options 0

    # Offer subcommand / subcommand argument completions
    local -r subcommand="${unparsed_words[0]}"
    unset 'unparsed_words[0]'
    unparsed_words=("${unparsed_words[@]}")
    case "${subcommand}" in
    register|deregister|list)
        # Offer subcommand argument completions
        "_tapper_service_${subcommand}"
        ;;
    *)
        # Offer subcommand completions
        COMPREPLY+=($(compgen -W 'register deregister list' -- "${cur}"))
        ;;
    esac
}

_tapper_service_register() {
    repeating_flags=()
    non_repeating_flags=(--openapi --keep-alive --json --version -h --help)
    repeating_options=(--tag --route --public-route --meta)
    non_repeating_options=(--url --instance-id --version --description --prefix --health-endpoint --ttl --weight --traffic-weight --rate-limit --protocol --openapi-path --registry --token --log-level)
    __tapper_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--url')
        return
        ;;
    '--instance-id')
        return
        ;;
    '--version')
        return
        ;;
    '--description')
        return
        ;;
    '--prefix')
        return
        ;;
    '--health-endpoint')
        return
        ;;
    '--tag')
        return
        ;;
    '--route')
        return
        ;;
    '--public-route')
        return
        ;;
    '--ttl')
        return
        ;;
    '--weight')
        return
        ;;
    '--traffic-weight')
        return
        ;;
    '--rate-limit')
        return
        ;;
    '--protocol')
        __tapper_add_completions -W 'http1'$'\n''h2c'
        return
        ;;
    '--meta')
        return
        ;;
    '--openapi-path')
        return
        ;;
    '--registry')
        return
        ;;
    '--token')
        return
        ;;
    '--log-level')
        return
        ;;
    esac

    # Offer positional completions
    case "${positional_number}" in
    1)
        __tapper_add_completions -W "$(__tapper_custom_complete ---completion service register -- positional@0 "${COMP_CWORD}" "$(__tapper_cursor_index_in_current_word)")"
        return
        ;;
    esac
}

_tapper_service_deregister() {
    repeating_flags=()
    non_repeating_flags=(--version -h --help)
    repeating_options=()
    non_repeating_options=(--registry --token)
    __tapper_offer_flags_options 2

    # Offer option value completions
    case "${prev}" in
    '--registry')
        return
        ;;
    '--token')
        return
        ;;
    esac

    # Offer positional completions
    case "${positional_number}" in
    1)
        __tapper_add_completions -W "$(__tapper_custom_complete ---completion service deregister -- positional@0 "${COMP_CWORD}" "$(__tapper_cursor_index_in_current_word)")"
        return
        ;;
    2)
        __tapper_add_completions -W "$(__tapper_custom_complete ---completion service deregister -- positional@1 "${COMP_CWORD}" "$(__tapper_cursor_index_in_current_word)")"
        return
        ;;
    esac
}

_tapper_service_list() {
    repeating_flags=()
    non_repeating_flags=(--json --version -h --help)
    repeating_options=()
    non_repeating_options=(--registry --token)
    __tapper_offer_flags_options 0

    # Offer option value completions
    case "${prev}" in
    '--registry')
        return
        ;;
    '--token')
        return
        ;;
    esac
}

_tapper_status() {
    repeating_flags=()
    non_repeating_flags=(--json --quiet --watch --version -h --help)
    repeating_options=()
    non_repeating_options=(--service --gateway --admin-token --registry --token)
    __tapper_offer_flags_options 0

    # Offer option value completions
    case "${prev}" in
    '--service')
        __tapper_add_completions -W "$(__tapper_custom_complete ---completion status -- --service "${COMP_CWORD}" "$(__tapper_cursor_index_in_current_word)")"
        return
        ;;
    '--gateway')
        return
        ;;
    '--admin-token')
        return
        ;;
    '--registry')
        return
        ;;
    '--token')
        return
        ;;
    esac
}

_tapper_route() {
    repeating_flags=()
    non_repeating_flags=(--version -h --help)
    repeating_options=()
    non_repeating_options=()
    __tapper_offer_flags_options 0

    # Offer subcommand / subcommand argument completions
    local -r subcommand="${unparsed_words[0]}"
    unset 'unparsed_words[0]'
    unparsed_words=("${unparsed_words[@]}")
    case "${subcommand}" in
    test)
        # Offer subcommand argument completions
        "_tapper_route_${subcommand}"
        ;;
    *)
        # Offer subcommand completions
        COMPREPLY+=($(compgen -W 'test' -- "${cur}"))
        ;;
    esac
}

_tapper_route_test() {
    repeating_flags=()
    non_repeating_flags=(--only-failures --send --json --version -h --help)
    repeating_options=(-H)
    non_repeating_options=(--file --fail-under -d --data --gateway --admin-token --registry --token)
    __tapper_offer_flags_options 2

    # Offer option value completions
    case "${prev}" in
    '--file')
        return
        ;;
    '--fail-under')
        return
        ;;
    '-H')
        return
        ;;
    '-d'|'--data')
        return
        ;;
    '--gateway')
        return
        ;;
    '--admin-token')
        return
        ;;
    '--registry')
        return
        ;;
    '--token')
        return
        ;;
    esac
}

_tapper_shell() {
    repeating_flags=()
    non_repeating_flags=(--no-history --version -h --help)
    repeating_options=()
    non_repeating_options=(--registry --gateway)
    __tapper_offer_flags_options 0

    # Offer option value completions
    case "${prev}" in
    '--registry')
        return
        ;;
    '--gateway')
        return
        ;;
    esac
}

_tapper_help() {
    repeating_flags=()
    non_repeating_flags=(--version)
    repeating_options=()
    non_repeating_options=()
    __tapper_offer_flags_options -1
}

complete -o filenames -F _tapper tapper
