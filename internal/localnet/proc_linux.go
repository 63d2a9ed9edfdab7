package localnet

import "syscall"

// sysProcAttr puts a node in its own process group and asks the kernel to
// kill it if the orchestrator dies without stopping it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
