// Command printversion prints what the version package reports, for the linker-flag test.
package main

import (
	"fmt"

	"code.cloudfoundry.org/quarks-job/api/version"
)

func main() { fmt.Println(version.Get()) }
