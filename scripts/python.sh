# Sourced by the other scripts: finds Python 3.10 (Rasa 3.6 runs on 3.8-3.10) and sets PYTHON310.
find_python310() {
  local candidates=("${PYTHON310:-}" python3.10)
  if command -v pyenv >/dev/null 2>&1; then
    local root; root=$(pyenv root)
    candidates+=("$root"/versions/3.10*/bin/python3.10)
  fi
  candidates+=("$HOME"/.pyenv/versions/3.10*/bin/python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10)
  for candidate in "${candidates[@]}"; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys, venv, ensurepip; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
      PYTHON310=$(command -v "$candidate"); export PYTHON310; return 0
    fi
  done
  cat >&2 <<'MSG'
Python 3.10 was not found. Rasa Open Source 3.6 needs Python 3.8-3.10; this project uses 3.10.
Install it, then run this command again, for example:
  pyenv install 3.10          (with pyenv), or
  apt-get install python3.10 python3.10-venv   (where your distribution has it)
or point PYTHON310 at a python3.10 binary:  PYTHON310=/path/to/python3.10 ./scripts/run.sh
MSG
  return 1
}
