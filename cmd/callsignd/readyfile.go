package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// readyInfo is the content of the --ready-file: what scripts and tests need to
// reach a server that picked its own ports.
type readyInfo struct {
	PID            int    `json:"pid"`
	GRPCAddr       string `json:"grpc_addr"`
	HTTPAddr       string `json:"http_addr"`
	TLS            bool   `json:"tls"`
	Issuer         string `json:"issuer"`
	DataDir        string `json:"data_dir"`
	CredentialsDir string `json:"credentials_dir,omitempty"`
}

// writeReadyFile writes info to path atomically: a reader sees either no file
// or the whole document.
func writeReadyFile(path string, info readyInfo) error {
	data, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return fmt.Errorf("encode ready file: %w", err)
	}
	data = append(data, '\n')
	tmp, err := os.CreateTemp(filepath.Dir(path), ".callsignd-ready-*")
	if err != nil {
		return fmt.Errorf("write --ready-file: %w", err)
	}
	defer os.Remove(tmp.Name()) // gone after the rename; best effort otherwise
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write --ready-file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write --ready-file: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil { //nolint:gosec // addresses only, meant to be read
		return fmt.Errorf("write --ready-file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil { //nolint:gosec // G703: the path is the operator's --ready-file
		return fmt.Errorf("write --ready-file: %w", err)
	}
	return nil
}
