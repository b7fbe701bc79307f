job "typos" {
  tpye = "service"
  group "g" {
    cuont = 2
    task "web" {
      driver = "exec"
      config {
        comand = "/bin/web"
      }
      enviroment { A = "b" }
      restart {
        atempts = 3
      }
      service {
        check {
          type      = "tcp"
          port      = 80
          intervall = "10s"
          timeout   = "1s"
        }
      }
      banana = 1
    }
  }
}
