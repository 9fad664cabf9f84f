package demo

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal makes Linux stop the child if the demo itself dies
// without cleaning up (SIGKILL).
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
