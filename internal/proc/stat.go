package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// Stat is the part of /proc/PID/stat this module reads.
type Stat struct {
	State     byte   // field 3: R, S, D, Z (zombie), X (dead), ...
	PPID      int    // field 4
	UTime     uint64 // field 14: clock ticks in user mode
	STime     uint64 // field 15: clock ticks in kernel mode
	StartTime uint64 // field 22: clock ticks after boot
}

// ReadStat reads and parses /proc/PID/stat. A process that is gone is an
// error wrapping os.ErrNotExist.
func ReadStat(pid int) (Stat, error) {
	data, err := os.ReadFile(statPath(pid))
	if err != nil {
		return Stat{}, err
	}
	return ParseStat(data)
}

// ParseStat parses the contents of a /proc/PID/stat file. It returns an
// error for a line without ')', with fewer than 20 fields after it, or with
// a field it reads that is not a number.
func ParseStat(data []byte) (Stat, error) {
	// comm (field 2) is in parentheses and may hold spaces and ')': the
	// fields after it start after the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return Stat{}, errors.New("parse /proc/PID/stat: no ')'")
	}
	f := bytes.Fields(data[i+1:])
	// f[0] is field 3 (state); starttime, field 22, is f[19].
	if len(f) < 20 {
		return Stat{}, fmt.Errorf("parse /proc/PID/stat: %d fields after comm, want at least 20", len(f))
	}
	s := Stat{State: f[0][0]}
	var err error
	if s.StartTime, err = strconv.ParseUint(string(f[19]), 10, 64); err != nil {
		return Stat{}, fmt.Errorf("parse /proc/PID/stat starttime %q: %w", f[19], err)
	}
	ppid, err := strconv.ParseInt(string(f[1]), 10, 32)
	if err != nil {
		return Stat{}, fmt.Errorf("parse /proc/PID/stat ppid %q: %w", f[1], err)
	}
	s.PPID = int(ppid)
	if s.UTime, err = strconv.ParseUint(string(f[11]), 10, 64); err != nil {
		return Stat{}, fmt.Errorf("parse /proc/PID/stat utime %q: %w", f[11], err)
	}
	if s.STime, err = strconv.ParseUint(string(f[12]), 10, 64); err != nil {
		return Stat{}, fmt.Errorf("parse /proc/PID/stat stime %q: %w", f[12], err)
	}
	return s, nil
}

// StartTime is field 22 of /proc/PID/stat, the process's start time in clock
// ticks since boot. A pid and its start time name one process for the life
// of the system: a recycled pid has a later start time.
func StartTime(pid int) (uint64, error) {
	data, err := os.ReadFile(statPath(pid))
	if err != nil {
		return 0, fmt.Errorf("read start time of pid %d: %w", pid, err)
	}
	s, err := ParseStat(data)
	return s.StartTime, err
}

func statPath(pid int) string { return fmt.Sprintf("/proc/%d/stat", pid) }

// Alive reports whether pid runs and is the process that started at start:
// not gone, not a zombie waiting to be reaped, not a recycled pid.
func Alive(pid int, start uint64) bool {
	s, err := ReadStat(pid)
	return err == nil && s.StartTime == start && s.State != 'Z' && s.State != 'X'
}
