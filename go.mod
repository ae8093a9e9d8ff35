module github.com/brothaman/brothaman-go

go 1.26.8

require (
	github.com/coreos/go-systemd/v22 v22.7.0
	github.com/opencontainers/runtime-spec v1.3.0
	github.com/sirupsen/logrus v1.10.2
	github.com/spf13/pflag v1.1.0
	github.com/vishvananda/netns v0.0.5
	go.podman.io/common v0.66.0
	go.yaml.in/yaml/v3 v3.0.5
	golang.org/x/sys v0.50.0
)

require (
	github.com/fsnotify/fsnotify v1.9.0 // indirect
	go.podman.io/storage v1.61.0 // indirect
)
