#!/bin/sh
# The AWS Batch job's command (runners/aws_batch.py), run as `sh -c "$(cat this)" celestra ARGV...`: fetch the
# input files, create the output dir, run ARGV in the working dir, send the output files back. Needs only a shell,
# tar, base64 and one of curl, python3 or wget: no aws-cli and no AWS credentials in the job.
# Exit 97: the input files could not be fetched (ARGV did not run); 98: ARGV succeeded but its output files could
# not be sent; else ARGV's own exit code. __WORKDIR__ is replaced by the runner.
in_url="${CELESTRA_INPUTS_URL:-}"; out_url="${CELESTRA_OUTPUTS_URL:-}"
form="${CELESTRA_OUTPUTS_FORM:-}"; keep="${CELESTRA_OUTPUTS_PATHS:-_outputs}"
unset CELESTRA_INPUTS_URL CELESTRA_OUTPUTS_URL CELESTRA_OUTPUTS_FORM CELESTRA_OUTPUTS_PATHS
http() {
  if command -v curl >/dev/null 2>&1; then
    if [ "$1" = get ]; then curl -fsS -o "$3" "$2"
    else curl -fsS -o /dev/null -H "Content-Type: $4" --data-binary "@$3" "$2"; fi
  elif command -v python3 >/dev/null 2>&1; then
    python3 -c 'import sys,shutil,urllib.request as r;a=sys.argv
if a[1]=="get": shutil.copyfileobj(r.urlopen(a[2]),open(a[3],"wb"))
else: r.urlopen(r.Request(a[2],data=open(a[3],"rb").read(),headers={"Content-Type":a[4]}))' "$@"
  elif command -v wget >/dev/null 2>&1; then
    if [ "$1" = get ]; then wget -q -O "$3" "$2"
    else wget -q -O /dev/null --header "Content-Type: $4" --post-file "$3" "$2"; fi
  else echo "celestra: the image has neither curl, python3 nor wget to reach S3" >&2; return 1; fi
}
mkdir -p "__WORKDIR__" && cd "__WORKDIR__" || exit 97
if [ -n "$in_url" ]; then
  { http get "$in_url" /tmp/celestra-in.tar && tar -xf /tmp/celestra-in.tar && rm -f /tmp/celestra-in.tar; } ||
    { echo "celestra: cannot fetch the input files from S3" >&2; exit 97; }
fi
mkdir -p _outputs
"$@"
rc=$?
if [ -n "$out_url" ]; then
  b="celestra-$$-boundary"
  { tar -cf /tmp/celestra-out.tar $keep && base64 /tmp/celestra-out.tar > /tmp/celestra-out.b64 &&
    { printf '%s\n' "$form" | while IFS= read -r kv; do [ -z "$kv" ] ||
        printf -- '--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' "$b" "${kv%%=*}" "${kv#*=}"; done
      printf -- '--%s\r\nContent-Disposition: form-data; name="file"; filename="outputs.tar.b64"\r\n' "$b"
      printf 'Content-Type: text/plain\r\n\r\n'; cat /tmp/celestra-out.b64; printf -- '\r\n--%s--\r\n' "$b"
    } > /tmp/celestra-out.body &&
    http post "$out_url" /tmp/celestra-out.body "multipart/form-data; boundary=$b"; } ||
    { echo "celestra: cannot send the output files to S3" >&2; [ "$rc" -ne 0 ] || rc=98; }
fi
exit "$rc"
