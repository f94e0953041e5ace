package eureka

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/gingov/gingov/registry"
)

// The JSON that Eureka servers speak. Eureka's JSON comes from an XML
// mapping, and servers and versions differ in details, so the decoder
// accepts both shapes where they are known to vary: "instance" as one
// object or an array, ports and flags as numbers, strings or booleans.

type envelope struct {
	Instance *instance `json:"instance"`
}

type instance struct {
	InstanceID         string      `json:"instanceId,omitempty"`
	HostName           string      `json:"hostName"`
	App                string      `json:"app"`
	IPAddr             string      `json:"ipAddr"`
	VIPAddress         string      `json:"vipAddress,omitempty"`
	SecureVIPAddress   string      `json:"secureVipAddress,omitempty"`
	Status             string      `json:"status"`
	Port               *portInfo   `json:"port,omitempty"`
	SecurePort         *portInfo   `json:"securePort,omitempty"`
	HomePageURL        string      `json:"homePageUrl,omitempty"`
	StatusPageURL      string      `json:"statusPageUrl,omitempty"`
	HealthCheckURL     string      `json:"healthCheckUrl,omitempty"`
	DataCenterInfo     *dataCenter `json:"dataCenterInfo,omitempty"`
	LeaseInfo          *leaseInfo  `json:"leaseInfo,omitempty"`
	Metadata           metadata    `json:"metadata,omitempty"`
	LastUpdatedTime    jsonString  `json:"lastUpdatedTimestamp,omitempty"`
	LastDirtyTimestamp jsonString  `json:"lastDirtyTimestamp,omitempty"`
}

type dataCenter struct {
	Class string `json:"@class"`
	Name  string `json:"name"`
}

type leaseInfo struct {
	RenewalIntervalInSecs int `json:"renewalIntervalInSecs"`
	DurationInSecs        int `json:"durationInSecs"`
}

// portInfo is {"$":8080,"@enabled":"true"}. On decoding, "$" may be a
// number or a string, "@enabled" a string or a boolean, and the whole may
// be a bare number or string.
type portInfo struct {
	Port       int
	Enabled    bool
	EnabledSet bool // "@enabled" was present (decoding only)
}

func (p portInfo) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, `{"$":%d,"@enabled":"%t"}`, p.Port, p.Enabled), nil
}

func (p *portInfo) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	if b[0] != '{' {
		n, err := jsonInt(b)
		if err != nil {
			return fmt.Errorf("port: %w", err)
		}
		*p = portInfo{Port: n}
		return nil
	}
	var raw struct {
		Port    json.RawMessage `json:"$"`
		Enabled json.RawMessage `json:"@enabled"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*p = portInfo{}
	if len(raw.Port) > 0 && string(raw.Port) != "null" {
		n, err := jsonInt(raw.Port)
		if err != nil {
			return fmt.Errorf("port: %w", err)
		}
		p.Port = n
	}
	if len(raw.Enabled) > 0 && string(raw.Enabled) != "null" {
		v, err := jsonBool(raw.Enabled)
		if err != nil {
			return fmt.Errorf("port @enabled: %w", err)
		}
		p.Enabled, p.EnabledSet = v, true
	}
	return nil
}

// jsonInt reads a JSON number or a string holding one.
func jsonInt(b []byte) (int, error) {
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return 0, err
		}
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%s is not an integer", b)
	}
	return n, nil
}

// jsonBool reads a JSON boolean or a string holding one.
func jsonBool(b []byte) (bool, error) {
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return false, err
		}
	}
	v, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return false, fmt.Errorf("%s is not a boolean", b)
	}
	return v, nil
}

// jsonString is a string on encoding; on decoding it takes a string, a
// number or a boolean as its text.
type jsonString string

func (s *jsonString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || string(b) == "null":
		*s = ""
	case b[0] == '"':
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = jsonString(v)
	case b[0] == '{' || b[0] == '[':
		return errors.New("object where a string was expected")
	default:
		*s = jsonString(b)
	}
	return nil
}

// metadata is the metadata map. Decoding drops keys starting with
// "@" (a server writes {"@class":"java.util.Collections$EmptyMap"} for an
// empty map) and takes numbers and booleans as their text; nested values
// are dropped.
type metadata map[string]string

func (m *metadata) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	out := make(metadata, len(raw))
	for k, v := range raw {
		if strings.HasPrefix(k, "@") {
			continue
		}
		if v = bytes.TrimSpace(v); len(v) == 0 || string(v) == "null" {
			continue
		}
		var s jsonString
		if err := s.UnmarshalJSON(v); err != nil {
			continue
		}
		out[k] = string(s)
	}
	*m = out
	return nil
}

// instanceList is the "instance" member: one object or an array.
type instanceList []instance

func (l *instanceList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || string(b) == "null":
		*l = nil
		return nil
	case b[0] == '[':
		var list []instance
		if err := json.Unmarshal(b, &list); err != nil {
			return err
		}
		*l = list
		return nil
	default:
		var one instance
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*l = instanceList{one}
		return nil
	}
}

// decodeApplication reads the answer to GET /apps/{APP}:
// {"application":{"name":"ORDERS","instance":[...]}}.
func decodeApplication(b []byte) ([]instance, error) {
	var doc struct {
		Application *struct {
			Name     string       `json:"name"`
			Instance instanceList `json:"instance"`
		} `json:"application"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	if doc.Application == nil {
		return nil, errors.New(`no "application" member`)
	}
	return doc.Application.Instance, nil
}

// toServiceInstance converts a discovered instance; ok is false when it has
// no usable address. name is the service name to report when the instance
// has no vipAddress.
func (in *instance) toServiceInstance(name string) (*registry.ServiceInstance, bool) {
	host := in.IPAddr
	if host == "" {
		host = in.HostName
	}
	if host == "" {
		return nil, false
	}
	md := make(map[string]string, len(in.Metadata))
	for k, v := range in.Metadata {
		md[k] = v
	}
	port := 0
	switch {
	case in.Port != nil && in.Port.Port > 0 && (in.Port.Enabled || !in.Port.EnabledSet):
		port = in.Port.Port
	case in.SecurePort != nil && in.SecurePort.Port > 0 && in.SecurePort.Enabled:
		port = in.SecurePort.Port
		if _, ok := md["scheme"]; !ok {
			md["scheme"] = "https"
		}
	}
	if port <= 0 || port > 65535 {
		return nil, false
	}
	s := &registry.ServiceInstance{
		ID:      in.InstanceID,
		Name:    in.VIPAddress,
		Version: md["version"],
		Address: net.JoinHostPort(host, strconv.Itoa(port)),
	}
	if s.Name == "" {
		s.Name = name
	}
	if w, err := strconv.Atoi(md["weight"]); err == nil && w > 0 {
		s.Weight = w
	}
	delete(md, "version")
	delete(md, "weight")
	if len(md) > 0 {
		s.Metadata = md
	}
	if s.ID == "" {
		s.ID = s.InstanceID()
	}
	return s, true
}
