# Small tooling; CI runs .ci/run, which calls the same test command.
.PHONY: test race vet lint proto proto-check bench build

build:
	go build ./...

test:
	go test -race -count=1 ./...
	go test -count=1 -run '^TestVirtual' ./sim

race: test

vet:
	go vet ./...

lint:
	golangci-lint run ./...

# Regenerates p2p/wire/wire.pb.go (needs protoc 3.21+ and protoc-gen-go at the
# version in go.mod: go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12).
proto:
	go generate ./p2p/wire

proto-check:
	bash .ci/proto-check

bench:
	go test -run '^$$' -bench . -benchmem ./...
