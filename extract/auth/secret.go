package auth

import (
	"fmt"
	"os"
	"strings"
)

// ReadSecret reads a secret from the environment variable env or, failing
// that, from file. Errors name where it was looked for, never its value.
func ReadSecret(env, file string) (string, error) {
	if env != "" {
		if v := strings.TrimSpace(os.Getenv(env)); v != "" {
			return v, nil
		}
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read secret file: %w", err)
		}
		if v := strings.TrimSpace(string(b)); v != "" {
			return v, nil
		}
	}
	return "", fmt.Errorf("not set: give it in $%s or a file", env)
}
