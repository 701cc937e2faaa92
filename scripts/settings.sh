# Reading a host's settings file (sourced by scripts/setup, lighttpd-site
# and backends on an installed host): KEY=value lines, # comments, as
# systemd's EnvironmentFile= reads them (the simple part of it: no
# expansion, no continuation lines; one pair of quotes around a value is
# taken off).

# settings_keys FILE: the keys it sets, once each, in order
settings_keys() {
    sed -n 's/^[[:space:]]*\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' "$1" | awk '!seen[$0]++'
}

# settings_get FILE KEY: its value (the last one set); status 1 when unset
settings_get() {
    grep -q "^[[:space:]]*$2=" "$1" || return 1
    sed -n "s/^[[:space:]]*$2=//p" "$1" | tail -n 1 |
        sed -e 's/^"\(.*\)"[[:space:]]*$/\1/' -e "s/^'\(.*\)'[[:space:]]*\$/\1/"
}
