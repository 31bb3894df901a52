// mount(8) and umount(8) integration: the `mount.pagefs` and
// `umount.pagefs` helpers (links to the pagefs program, told apart by the
// name they are run as), and the mount's entry in libmount's utab.
//
// mount(8) runs `mount.pagefs SPEC DIR [-sfnv] [-N NS] [-o OPTIONS] [-t TYPE]`
// for `mount -t pagefs` and fstab lines of type pagefs; the helper mounts as
// `pagefs SPEC DIR -o OPTIONS` would (-f: do nothing, -s: ignore unknown
// options, -n and -v: accepted).
//
// Why umount needs help: on a FUSE mount the kernel lets umount return as
// soon as the mount is gone, while the daemon is still writing the cache
// home; a script that unmounts and powers off (or checks or copies the
// image) can lose data. So the daemon records its mount in libmount's utab
// (/run/mount/utab) with the user-space option uhelper=pagefs. umount(8)
// then runs `umount.pagefs DIR [-flnrv] [-N NS] [-t TYPE]`, which reads the
// daemon's pid from the mount's statistics, unmounts (umount2, or
// fusermount3 -u for a user), and waits until the daemon has exited: then
// every page is home and the device is closed and unlocked. With -l (lazy)
// it does not wait. The same helper is installed as umount.fuse.pagefs,
// the name libmount looks for by type when it reads mountinfo. Without a
// utab entry (an unprivileged mount, or /run/mount not writable) umount(8)
// does not run the helper; `fusermount3 -u DIR; flock DEVICE true` waits.
//
// Thread-safety: called from main only.
#pragma once

#include <string>
#include <vector>

namespace pagefs {

// True when argv[0] names the mount helper.
bool is_mount_helper(const char* argv0);
// True when argv[0] names the umount helper.
bool is_umount_helper(const char* argv0);

// The pagefs command line for a mount helper's arguments; empty with
// *exit_code set when the helper has nothing to mount (-f, a usage error).
std::vector<std::string> mount_helper_args(int argc, char** argv, int* exit_code);

// Runs the umount helper; returns its exit code (0, or 32 as umount(8)'s).
int umount_helper(int argc, char** argv);

// Adds (remove: drops) the mount's entry in utab; best effort, silent when
// utab cannot be written (an unprivileged daemon).
void register_mount(const std::string& device, const std::string& mountpoint);
void unregister_mount(const std::string& mountpoint);

}  // namespace pagefs
