// labkit snippet: solution_12_deny_exec: refuse, with EPERM, running one program (inode LK12_INO) in one cgroup (LK12_CGROUP).
// hook: lsm/bprm_check_security (BPF LSM: LSM_PROBE, attached by lab.load; bpf must be an active LSM)
// min kernel: 5.7 (BPF LSM)
//
// An LSM program runs for every process of the machine: the cgroup test comes
// first, so nothing outside the sandbox is ever refused. bprm->file is the file
// about to run (whatever path or symbolic link named it); reading that file, or
// running another program, never reaches this hook.
#include <linux/fs.h>
#include <linux/binfmts.h>
#include <linux/errno.h>

#ifndef LK12_CGROUP
#define LK12_CGROUP 0
#endif
#ifndef LK12_INO
#define LK12_INO 0
#endif

LSM_PROBE(bprm_check_security, struct linux_binprm *bprm)
{
    if (bpf_get_current_cgroup_id() != LK12_CGROUP)
        return 0;
    if (bprm->file->f_inode->i_ino == LK12_INO)
        return -EPERM;              // execve() fails with EPERM
    return 0;
}
