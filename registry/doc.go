// Package registry will hold service registration and discovery: the
// Registrar and Discovery interfaces, the serve/drain lifecycle and Eureka.
package registry
