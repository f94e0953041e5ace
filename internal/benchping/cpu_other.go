//go:build !unix

package benchping

func processCPU() int64 { return 0 }
