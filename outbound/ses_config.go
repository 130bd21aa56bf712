package outbound

import (
	"errors"
	"fmt"
)

// ValidConfigurationSet checks an SES configuration set name as SES
// requires it (the SES API reference, ConfigurationSet, Name): "Contain only
// letters (a-z, A-Z), numbers (0-9), underscores (_), or dashes (-)" and
// "64 characters or fewer". Empty is valid (none). A name SES would refuse
// would otherwise fail every message with BadRequestException, which is
// final for the message (ses_errors.go): it is refused at start instead.
func ValidConfigurationSet(name string) error {
	if len(name) > 64 {
		return fmt.Errorf("SES configuration set name is %d characters long, at most 64 are allowed", len(name))
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isAlnum(c) && c != '_' && c != '-' {
			return errors.New("SES configuration set name may contain only letters, digits, '_' and '-'")
		}
	}
	return nil
}

// ValidSESRegion checks the form of an AWS region name ("eu-west-1",
// "us-gov-west-1"): lower-case letters, digits and '-', neither first nor
// last, at most 63 characters, since the region is a label of the endpoint's
// host name (email.REGION.amazonaws.com; RFC 1035 §2.3.1). Whether SES runs
// there is for the endpoint to say.
func ValidSESRegion(region string) error {
	if region == "" || len(region) > 63 || region[0] == '-' || region[len(region)-1] == '-' {
		return fmt.Errorf("%q is not an AWS region name", region)
	}
	for i := 0; i < len(region); i++ {
		if c := region[i]; !(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') && c != '-' {
			return fmt.Errorf("%q is not an AWS region name (lower-case letters, digits and '-')", region)
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
