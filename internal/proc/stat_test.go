package proc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name, stat string
		want       Stat
		err        string
	}{
		{
			name: "comm with spaces and parentheses",
			stat: "4242 (we) ird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 10000 100",
			want: Stat{State: 'S', PPID: 1, UTime: 1, STime: 2, StartTime: 987654},
		},
		{
			name: "zombie",
			stat: "7 (sh) Z 6 7 7 0 -1 4194560 100 0 0 0 15 16 0 0 20 0 1 0 42 0 0",
			want: Stat{State: 'Z', PPID: 6, UTime: 15, STime: 16, StartTime: 42},
		},
		{name: "short line", stat: "1 (x) S 1", err: "parse /proc/PID/stat: 2 fields after comm, want at least 20"},
		{name: "no comm", stat: "1 x S 1", err: "parse /proc/PID/stat: no ')'"},
		{
			name: "starttime not a number",
			stat: "1 (x) S 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 soon 0 0",
			err:  `parse /proc/PID/stat starttime "soon": strconv.ParseUint: parsing "soon": invalid syntax`,
		},
		{
			name: "ppid not a number",
			stat: "1 (x) S - 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0",
			err:  `parse /proc/PID/stat ppid "-": strconv.ParseInt: parsing "-": invalid syntax`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStat([]byte(tt.stat))
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("ParseStat error = %v; want %s", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseStat = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestReadStatOfSelf(t *testing.T) {
	s, err := ReadStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// /proc/PID/stat is the thread group leader's: a Go test's main thread
	// may sleep (S) while another thread runs this. Alive, either way.
	if s.PPID != os.Getppid() || s.StartTime == 0 || (s.State != 'R' && s.State != 'S') {
		t.Errorf("ReadStat(self) = %+v; want ppid %d, a start time, state R or S", s, os.Getppid())
	}
	start, err := StartTime(os.Getpid())
	if err != nil || start != s.StartTime {
		t.Errorf("StartTime(self) = %d, %v; want %d", start, err, s.StartTime)
	}
}

func TestGone(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if _, err := ReadStat(pid); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadStat(reaped pid) error = %v; want os.ErrNotExist", err)
	}
	_, err := StartTime(pid)
	if want := fmt.Sprintf("read start time of pid %d: open /proc/%d/stat: no such file or directory", pid, pid); err == nil || err.Error() != want {
		t.Errorf("StartTime(reaped pid) error = %v; want %s", err, want)
	}
}

func TestAlive(t *testing.T) {
	self, err := StartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// A child that has exited but is not reaped yet is a zombie.
	zombie := exec.Command("true")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	defer zombie.Wait()
	var zs Stat
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if zs, err = ReadStat(zombie.Process.Pid); err == nil && zs.State == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child did not become a zombie: %+v, %v", zs, err)
		}
	}
	tests := []struct {
		name  string
		pid   int
		start uint64
		want  bool
	}{
		{"self", os.Getpid(), self, true},
		{"recycled pid (start time differs)", os.Getpid(), self + 1, false},
		{"zombie", zombie.Process.Pid, zs.StartTime, false},
		{"pid 0", 0, 0, false},
		{"negative pid", -1, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Alive(tt.pid, tt.start); got != tt.want {
				t.Errorf("Alive(%d, %d) = %v; want %v", tt.pid, tt.start, got, tt.want)
			}
		})
	}
}
