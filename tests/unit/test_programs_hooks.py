"""Syscall names as students type them, whatever the architecture names the kernel symbol."""

import pytest

from labkit.programs.hooks import strip_syscall_prefix


@pytest.mark.parametrize("typed, name", [
    ("clone", "clone"),
    ("sys_enter_clone", "clone"),
    ("sys_exit_clone3", "clone3"),
    ("__x64_sys_clone", "clone"),        # x86-64's kernel symbol
    ("__arm64_sys_clone", "clone"),      # arm64's
    ("__ia32_sys_getppid", "getppid"),
    ("__s390x_sys_openat", "openat"),
    ("sys_clone", "clone"),
    ("sysinfo", "sysinfo"),              # a syscall whose name starts with "sys", kept whole
    ("syslog", "syslog"),
    ("__arm64_sys_sysinfo", "sysinfo"),  # only one prefix comes off
])
def test_prefixes_come_off_for_every_architecture(typed, name):
    assert strip_syscall_prefix(typed) == name
