# Sourced by the scripts: puts the dora CLI 1.1.0 (the version of dora-node-api in
# Cargo.toml) on PATH, installing it with pip when it is missing or another version.
DORA_VERSION=1.1.0
if ! dora --version 2>/dev/null | grep -q "dora-cli ${DORA_VERSION}"; then
  echo "installing dora-rs-cli==${DORA_VERSION} with pip" >&2
  python3 -m pip install --quiet --disable-pip-version-check "dora-rs-cli==${DORA_VERSION}"
  PATH="$(python3 -m site --user-base)/bin:$PATH"
  hash -r
fi
dora --version >&2
