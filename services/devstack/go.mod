module github.com/redms/redms/services/devstack

go 1.26

replace github.com/redms/redms/pkg => ../../pkg
