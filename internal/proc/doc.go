// Package proc reads /proc/PID/stat: the one parser of it in this module.
//
// A pid alone does not name a process for long: the kernel reuses it. A pid
// and its start time (field 22, clock ticks after boot) name one process for
// the life of the system, which is how bro-hook records a container's process
// and how bro-proxy checks the record before entering anything (Alive).
//
// Privileges: none; /proc/PID/stat is world-readable. Caveat: field 2, the
// command name, is in parentheses and may hold spaces and ')' (a process sets
// it with prctl or by its file name), so fields are counted from the last ')'.
package proc
