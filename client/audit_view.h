/* audit_view.h - how the CLI shows the audit trail: the `antenna audit` table of GET /v1/audit
 * entries and the verdict of GET /v1/audit/verify; and how it checks a signed checkpoint that an
 * auditor kept (its Ed25519 signature, with the public key the auditor pinned, and that the chain
 * still holds its entry with its hash).
 *
 * Never talks to the network; prints only to the stream it is given. Tolerates any JSON: missing
 * fields or fields of the wrong type show as "-", control characters as spaces.
 */
#ifndef ANTENNA_AUDIT_VIEW_H
#define ANTENNA_AUDIT_VIEW_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

/* The width the DETAILS column is cut to. */
#define AUDIT_VIEW_DETAILS_WIDTH 60

/* Formats `details` as compact JSON (keys in the server's order, no spaces) cut to at most `width`
 * UTF-8 characters (width >= 4): a longer text keeps its first width - 3 characters and ends with
 * "...". NULL or JSON null gives "-". Never splits a UTF-8 character. Writes into buf[len] (cut
 * to fit) and returns buf. */
char *audit_view_details(const json_t *details, size_t width, char *buf, size_t len);

/* Prints the entries of a JSON array as the `antenna audit` table: SEQ TIME ACTOR PARTNER ACTION
 * DETAILS, TIME in local time with seconds, DETAILS as audit_view_details with `width`. Prints
 * nothing for an empty array or a non-array. Returns the number of rows printed, or -ENOMEM /
 * -EIO. */
int audit_view_print_table(FILE *out, const json_t *entries, size_t width);

/* Prints the verdict of GET /v1/audit/verify ({"ok", "entries", "first_bad", "problem",
 * "head_seq"}): "audit trail OK: N entries verified" when ok is true, else "audit trail BROKEN at
 * entry N: PROBLEM" (N is first_bad, "?" when missing; PROBLEM "no reason given" when missing).
 * Returns the CLI's exit status for it: 0 when the trail verified, 1 when it is broken; or
 * -EINVAL (nothing printed) when the answer has no boolean "ok", or -EIO. */
int audit_view_print_verify(FILE *out, const json_t *verdict);

/* Checks a checkpoint (the JSON object POST /v1/audit/checkpoint answered, see
 * scheduler/audit.h) against `pinned_pem`, the broker's public key in PEM that the auditor pinned:
 * format, seq, hash, key_id, public_key and signature present and well formed, public_key the
 * pinned key, and the Ed25519 signature valid over the checkpoint without "signature" (compact
 * JSON, keys sorted). Returns 0 when it holds; 1 when it does not, with why[len] saying why; or
 * -EINVAL when pinned_pem is not an Ed25519 public key (why says so). */
int audit_view_checkpoint_check(const json_t *cp, const char *pinned_pem, char *why, size_t len);

/* Compares a checkpoint with `entries`, the array GET /v1/audit?after=SEQ-1&limit=1 answered for
 * its seq. Returns 0 when the chain holds the entry with the checkpoint's hash; 1 when not
 * (deleted, or rewritten: why[len] says which). */
int audit_view_checkpoint_in_chain(const json_t *cp, const json_t *entries, char *why, size_t len);

#endif
