// GNU readline for Swift (libreadline-dev). Swift 6 refuses to touch readline's mutable C globals,
// so the shell sets them through these small inline functions.
#ifndef TAPPER_CREADLINE_SHIM_H
#define TAPPER_CREADLINE_SHIM_H
#include <stdio.h>
#include <readline/readline.h>
#include <readline/history.h>

typedef char **(*tapper_rl_attempted_completion_t)(const char *, int, int);

static inline void tapper_rl_setup(const char *name, tapper_rl_attempted_completion_t completer) {
    rl_readline_name = name;
    rl_attempted_completion_function = completer;
    // The shell handles SIGINT itself (it clears the line or interrupts the running command).
    rl_catch_signals = 0;
    rl_catch_sigwinch = 1;
    // Words break on blanks only: route paths, URLs and --opt=value stay whole.
    rl_basic_word_break_characters = " \t\n";
    rl_completer_quote_characters = "'\"";
}

/// Called from the completion function: no filename completion when nothing matches.
static inline void tapper_rl_no_default_completion(void) { rl_attempted_completion_over = 1; }

/// After Ctrl-C at the prompt: forget the half-typed line and show a fresh prompt.
static inline void tapper_rl_clear_line(void) {
    rl_free_line_state();
    rl_replace_line("", 0);
    rl_point = 0;
    rl_end = 0;
    rl_crlf();
    rl_on_new_line();
    rl_redisplay();
}

/// The text typed so far on the current line (for completion context).
static inline const char *tapper_rl_line_buffer(void) { return rl_line_buffer; }
#endif
