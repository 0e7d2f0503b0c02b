# shellcheck shell=sh
# Backing up and restoring a tree on a volume, for the images' ft-data
# (sourced; the same file in the ftps, wordpress and grafana images).

# backup_tree VOLUME PATH: PATH (relative to VOLUME, "." for all of it) as a
# tar on stdout, owners and modes kept.
backup_tree() {
  exec tar -C "$1" -cf - "$2"
}

# restore_tree VOLUME PATH: a tar of backup_tree's from stdin, unpacked into
# VOLUME/.restore first (the same file system, so the swap is renames); only
# once it is whole does it replace PATH, whose old contents go away.
restore_tree() {
  cd "$1" || return
  rm -rf .restore .replaced
  mkdir .restore .replaced
  tar -C .restore -xf -
  if [ "$2" = . ]; then
    find . -mindepth 1 -maxdepth 1 ! -name .restore ! -name .replaced -exec mv {} .replaced/ \;
    find .restore -mindepth 1 -maxdepth 1 -exec mv {} . \;
  else
    if [ -e "$2" ]; then mv "$2" .replaced/; fi
    mv ".restore/$2" "$2"
  fi
  rm -rf .restore .replaced
}
