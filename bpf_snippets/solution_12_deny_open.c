// labkit snippet: solution_12_deny_open: refuse, with EPERM, every open of one file (inode LK12_INO) in one cgroup (LK12_CGROUP).
// hook: lsm/file_open (BPF LSM: LSM_PROBE, attached by lab.load; bpf must be an active LSM)
// min kernel: 5.7 (BPF LSM)
//
// file_open runs at every open, for reading or writing, whatever name was
// opened: the inode is the file (a hard link is another name for it). The
// cgroup test keeps it to the sandbox's processes.
#include <linux/fs.h>
#include <linux/errno.h>

#ifndef LK12_CGROUP
#define LK12_CGROUP 0
#endif
#ifndef LK12_INO
#define LK12_INO 0
#endif

LSM_PROBE(file_open, struct file *file)
{
    if (bpf_get_current_cgroup_id() == LK12_CGROUP && file->f_inode->i_ino == LK12_INO)
        return -EPERM;              // open() fails with EPERM
    return 0;
}
